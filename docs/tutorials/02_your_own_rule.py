# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Your own learning rule, from its equations
#
# A learning rule in dynlearn is a circuit that writes its equations and nothing else: how
# its neurons move with the weights held fixed (`vector_field`) and how its weights move
# (`plasticity`, the rate $\dot\theta$). `dynlearn.Learning(circuit)` joins the two into one
# system in which neurons and synapses evolve together, and `dynlearn.fit` trains it.
#
# Our rule: *feedback alignment* (Lillicrap et al. 2016) in continuous time, for one hidden
# layer of leaky neurons. With input $x(t)$ and target $y(t)$ streaming by,
#
# $$\tau \dot u_1 = -u_1 + W_1 x + b_1, \qquad r_1 = \tanh(u_1), \qquad
#   \tau \dot u_2 = -u_2 + W_2 r_1 + b_2 ,$$
#
# the output error $e_2 = y - u_2$ is sent down through a **fixed random** matrix $B$ instead
# of $W_2^\top$ (no weight transport), $e_1 = (1 - r_1^2) \odot B e_2$, and every synapse
# follows a local, always-on rule
#
# $$\dot W_2 = \eta\, e_2 r_1^\top, \quad \dot b_2 = \eta\, e_2, \qquad
#   \dot W_1 = \eta\, e_1 x^\top, \quad \dot b_1 = \eta\, e_1 .$$
#
# With $B = W_2^\top$ this would be gradient descent on $\tfrac12\lVert y - u_2\rVert^2$.

# %%
import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import optax

import dynlearn


class FeedbackAlignment(dynlearn.AbstractPlastic, dynlearn.AbstractBatchLearner):
    w1: jax.Array  # (n_hidden, n_in)
    b1: jax.Array
    w2: jax.Array  # (n_out, n_hidden)
    b2: jax.Array
    feedback: jax.Array  # B, (n_hidden, n_out): fixed
    tau: float = eqx.field(static=True, default=0.2)
    eta: float = eqx.field(static=True, default=0.5)

    @property
    def sizes(self):
        return [self.w1.shape[1], self.w1.shape[0], self.w2.shape[0]]

    def trainable(self):  # every float array learns except B
        spec = super().trainable()
        return eqx.tree_at(lambda c: c.feedback, spec, False)

    def time_constants(self):  # fixed Euler steps longer than tau are refused
        return {"tau": self.tau}

    def init_state(self, x=None):  # one row per parallel stream
        streams = 1 if x is None else x.shape[0]
        return {
            "hidden": {"u": jnp.zeros((streams, self.sizes[1]))},
            "output": {"u": jnp.zeros((streams, self.sizes[2]))},
        }

    def vector_field(self, t, y, args):
        x, _ = dynlearn.input_and_target(args, t)
        u1, u2 = y["hidden"]["u"], y["output"]["u"]
        du1 = (-u1 + x @ self.w1.T + self.b1) / self.tau
        du2 = (-u2 + jnp.tanh(u1) @ self.w2.T + self.b2) / self.tau
        return {"hidden": {"u": du1}, "output": {"u": du2}}

    def errors(self, r1, u2, target):
        e2 = target - u2
        return e2, (1 - r1**2) * (e2 @ self.feedback.T)

    def plasticity(self, t, y, args):
        x, target = dynlearn.input_and_target(args, t)
        r1, u2 = jnp.tanh(y["hidden"]["u"]), y["output"]["u"]
        e2, e1 = self.errors(r1, u2, target)
        n = x.shape[0]  # the streams share the weights: average over them
        rates = (e1.T @ x / n, e1.mean(0), e2.T @ r1 / n, e2.mean(0))
        rates = tuple(self.eta * r for r in rates)
        return eqx.tree_at(lambda c: (c.w1, c.b1, c.w2, c.b2), self, rates)

    def predict(self, x):
        return jnp.tanh(x @ self.w1.T + self.b1) @ self.w2.T + self.b2

    def updates(self, x, y, key):  # settle-then-update: the same rule at the fixed point
        r1 = jnp.tanh(x @ self.w1.T + self.b1)  # the neurons' fixed point: the forward pass
        u2 = r1 @ self.w2.T + self.b2
        e2, e1 = self.errors(r1, u2, y)
        n = x.shape[0]
        grads = (-e1.T @ x / n, -e1.mean(0), -e2.T @ r1 / n, -e2.mean(0))  # a gradient's sign
        updates = jax.tree.map(jnp.zeros_like, eqx.filter(self, self.trainable()))
        updates = eqx.tree_at(lambda c: (c.w1, c.b1, c.w2, c.b2), updates, grads)
        return updates, {"loss": dynlearn.squared_error(u2, y), "output": u2}


def make(sizes, key):
    n_in, n_hidden, n_out = sizes
    k1, k2, k3 = jax.random.split(key, 3)
    return FeedbackAlignment(
        w1=jax.random.normal(k1, (n_hidden, n_in)) / jnp.sqrt(n_in),
        b1=jnp.zeros(n_hidden),
        w2=jax.random.normal(k2, (n_out, n_hidden)) / jnp.sqrt(n_hidden),
        b2=jnp.zeros(n_out),
        feedback=jax.random.uniform(k3, (n_hidden, n_out), minval=-1) / jnp.sqrt(n_out),
    )


# %% [markdown]
# The class inherits from two interfaces: `AbstractPlastic` (neurons and weights as one
# phase-free system) and `AbstractBatchLearner`, whose `updates(x, y, key)` reads the same
# rule at the settled state and returns it with a gradient's sign, for an optax optimizer.
# Nothing else is written: no training loop, no backpropagation.
#
# ## Train it on handwritten digits
#
# `dynlearn.data.load("digits")` gives scikit-learn's 8×8 digits as a train/test split.
# In the **always-on** mode (`AlwaysOn`) each batch is cut into parallel streams, every sample
# shown for $t_\text{pres}$ while the joint system of neurons and weights is integrated with
# Euler steps of `dt`; nothing is switched between samples.

# %%
data = dynlearn.data.load("digits")
print(data.x_train.shape, data.x_test.shape, data.n_classes, "classes")
sizes = [data.n_features, 32, data.n_classes]

always_on = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=1.0, dt=0.1, streams=16))
streamed = dynlearn.fit(
    make(sizes, jax.random.key(0)), data, always_on, epochs=4, batch_size=64, progress=False
)
streamed.metrics[["train_loss", "test_accuracy"]].to_dataframe()

# %% [markdown]
# The **settle-then-update** mode (`SettleThenUpdate`) applies the same rule once per batch,
# read at the fixed point, with an optimizer. It makes one update per batch (22 per epoch
# here), where the always-on network changed its weights at every Euler step of every
# sample, so it needs more epochs to get as far:

# %%
settled = dynlearn.fit(
    make(sizes, jax.random.key(0)),
    data,
    dynlearn.SettleThenUpdate(optax.adam(2e-2)),
    epochs=4,
    batch_size=64,
    progress=False,
)

fig, ax = plt.subplots(figsize=(5, 3), constrained_layout=True)
for result, label in [(streamed, "always on"), (settled, "settle then update (Adam)")]:
    acc = 100 * result.metrics.test_accuracy
    ax.plot(acc.epoch, acc, marker="o", label=label)
ax.set(xlabel="epoch", ylabel="test accuracy (%)", title="feedback alignment on digits")
ax.legend()
plt.show()

# %% [markdown]
# ## How aligned did the feedback become?
#
# Feedback alignment works because the forward weights come to agree with the fixed
# feedback: the angle between $W_2^\top$ and $B$ falls below $90°$ as the network learns.

# %%
start, end = make(sizes, jax.random.key(0)), streamed.learner
for name, net in [("initial", start), ("after always-on training", end)]:
    angle = float(dynlearn.analysis.angle_deg(net.w2.T, net.feedback))
    print(f"angle(W2^T, B), {name}: {angle:.1f} degrees")

# %% [markdown]
# ## Register it
#
# The command line, the demo and the studies find rules by name in the registry group
# `rules` (see `dynlearn.registry`). A rule is a factory
# `(sizes, key) -> dynlearn.Recipe(learner, mode, batch_size)`. In this process,
# `registry.register` adds it:


# %%
def my_fa(sizes, key):
    mode = dynlearn.AlwaysOn(dynlearn.Presentation(t_pres=1.0, dt=0.1, streams=16))
    return dynlearn.Recipe(make(sizes, key), mode, batch_size=64)


dynlearn.registry.register("rules", "my-fa", my_fa, replace=True)
print("my-fa" in dynlearn.registry.entries("rules"), len(dynlearn.registry.entries("rules")))

# %% [markdown]
# Now `experiments.constraints.main(["--rules", "my-fa", ...])` (the
# [constraints study](05_constraints_study.py)) and `dynlearn.registry.load("rules", "my-fa")`
# find it here. For the command line (`dynlearn run constraints --rules my-fa`, a new
# process) put the factory in a package and declare it in its `pyproject.toml`, followed by
# `pip install -e .`:
#
# ```toml
# [project.entry-points."dynlearn.rules"]
# my-fa = "my_package.my_rules:my_fa"
# ```
