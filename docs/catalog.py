"""What the optimizer pages say about each optimizer that its docstring cannot: LaTeX, paper, reference.

`docs/hooks.py` writes one section per name of ``extensor.training.optimizers.__all__`` (and the
wrappers of ``extensor.training``); this table only adds the rendered equations, the paper and the
reference of those it knows, and the learning rate of the Rosenbrock plot. An optimizer missing
here still gets its section: the equations from its docstring, the paper from its module docstring,
and a plot at the best learning rate of a small grid (`docs/gen_plots.py`).

In the equations g = ∇f(θ) (negated under ``maximize``), γ the learning rate, λ the weight decay,
t the parameter's step count.
"""

from __future__ import annotations

from typing import Any

TORCH = "`torch.optim.{}` (torch 2.13), live in the parity tests"

ENTRIES: dict[str, dict[str, Any]] = {
    "SGD": {
        "paper": "Robbins & Monro, *A Stochastic Approximation Method* (1951); Nesterov momentum as in "
        "Sutskever et al., *On the importance of initialization and momentum in deep learning* (ICML 2013)",
        "reference": TORCH.format("SGD"),
        "math": r"""
g \leftarrow g + \lambda\theta \\
b \leftarrow \begin{cases} g & t = 1 \\ \mu b + (1-\tau) g & t > 1 \end{cases} \qquad
g \leftarrow \begin{cases} g + \mu b & \text{nesterov} \\ b & \text{otherwise} \end{cases}
\quad (\mu \neq 0) \\
\theta \leftarrow \theta - \gamma g""",
        "plot": {"lr": 3e-3, "momentum": 0.9},
    },
    "Adam": {
        "paper": "Kingma & Ba, *Adam: A Method for Stochastic Optimization* (ICLR 2015); AMSGrad from "
        "Reddi, Kale & Kumar, *On the Convergence of Adam and Beyond* (ICLR 2018)",
        "reference": TORCH.format("Adam"),
        "math": r"""
g \leftarrow g + \lambda\theta \\
m \leftarrow \beta_1 m + (1-\beta_1) g \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2 \\
\hat v \leftarrow \max(\hat v, v) \ \text{(amsgrad)}, \quad \text{else } \hat v = v \\
\theta \leftarrow \theta - \frac{\gamma}{1-\beta_1^t}\,
\frac{m}{\sqrt{\hat v}/\sqrt{1-\beta_2^t} + \epsilon}""",
        "plot": {"lr": 0.1},
    },
    "AdamW": {
        "paper": "Loshchilov & Hutter, *Decoupled Weight Decay Regularization* (ICLR 2019)",
        "reference": TORCH.format("AdamW"),
        "math": r"""
\theta \leftarrow \theta (1 - \gamma\lambda) \\
m \leftarrow \beta_1 m + (1-\beta_1) g \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2 \\
\hat v \leftarrow \max(\hat v, v) \ \text{(amsgrad)}, \quad \text{else } \hat v = v \\
\theta \leftarrow \theta - \frac{\gamma}{1-\beta_1^t}\,
\frac{m}{\sqrt{\hat v}/\sqrt{1-\beta_2^t} + \epsilon}""",
        "plot": {"lr": 0.1},
    },
    "RMSprop": {
        "paper": "Hinton, *Neural Networks for Machine Learning*, lecture 6e (2012); centred form from "
        "Graves, *Generating Sequences With Recurrent Neural Networks* (2013)",
        "reference": TORCH.format("RMSprop"),
        "math": r"""
g \leftarrow g + \lambda\theta \qquad s \leftarrow \alpha s + (1-\alpha) g^2 \\
d = \begin{cases} \sqrt{s - \bar g^2} + \epsilon, \ \bar g \leftarrow \alpha \bar g + (1-\alpha) g
& \text{centered} \\ \sqrt{s} + \epsilon & \text{otherwise} \end{cases} \\
\theta \leftarrow \begin{cases} \theta - \gamma b, \ b \leftarrow \mu b + g/d & \mu > 0 \\
\theta - \gamma g / d & \mu = 0 \end{cases}""",
        "plot": {"lr": 0.03},
    },
    "LARS": {
        "paper": "You, Gitman & Ginsburg, *Large Batch Training of Convolutional Networks* (2017, "
        "arXiv:1708.03888); `trust_clip` is LARC",
        "reference": "the paper (torch has no LARS); with η = 0 it is `torch.optim.SGD`, tested live",
        "math": r"""
r = \frac{\eta \lVert w\rVert}{\lVert g\rVert + \lambda \lVert w\rVert + \epsilon}
\ \ (\text{1 if a norm is 0}) \qquad r \leftarrow \min(r/\gamma, 1) \ \text{(trust\_clip)} \\
d = (g + \lambda w)\, r \qquad
b \leftarrow \begin{cases} d & t = 1 \\ \mu b + (1-\tau) d & t > 1 \end{cases} \\
w \leftarrow w - \gamma \,(d + \mu b \ \text{if nesterov else } b)""",
        "plot": {"lr": 1.0, "momentum": 0.9},
    },
    "Adagrad": {
        "paper": "Duchi, Hazan & Singer, *Adaptive Subgradient Methods for Online Learning and "
        "Stochastic Optimization* (JMLR 2011)",
        "reference": TORCH.format("Adagrad"),
        "math": r"""
\tilde\gamma = \frac{\gamma}{1 + (t-1)\eta} \qquad g \leftarrow g + \lambda\theta \qquad
s \leftarrow s + g^2 \ \ (s_0 = \tau) \\
\theta \leftarrow \theta - \tilde\gamma \frac{g}{\sqrt{s} + \epsilon}""",
        "plot": {"lr": 1.0},
    },
    "Adadelta": {
        "paper": "Zeiler, *ADADELTA: An Adaptive Learning Rate Method* (2012, arXiv:1212.5701)",
        "reference": TORCH.format("Adadelta"),
        "math": r"""
g \leftarrow g + \lambda\theta \qquad v \leftarrow \rho v + (1-\rho) g^2 \\
\Delta = \frac{\sqrt{u + \epsilon}}{\sqrt{v + \epsilon}}\, g \qquad
u \leftarrow \rho u + (1-\rho)\Delta^2 \qquad \theta \leftarrow \theta - \gamma\Delta""",
        "plot": {"lr": 1.0},
    },
    "Adamax": {
        "paper": "Kingma & Ba, *Adam: A Method for Stochastic Optimization* (ICLR 2015), section 7",
        "reference": TORCH.format("Adamax"),
        "math": r"""
g \leftarrow g + \lambda\theta \qquad m \leftarrow \beta_1 m + (1-\beta_1) g \qquad
u \leftarrow \max(\beta_2 u, |g| + \epsilon) \\
\theta \leftarrow \theta - \frac{\gamma}{1-\beta_1^t}\,\frac{m}{u}""",
        "plot": {"lr": 0.3},
    },
    "NAdam": {
        "paper": "Dozat, *Incorporating Nesterov Momentum into Adam* (ICLR 2016 workshop)",
        "reference": TORCH.format("NAdam"),
        "math": r"""
\mu_t = \beta_1\left(1 - \tfrac12\, 0.96^{t\psi}\right) \qquad \Pi_t = \Pi_{t-1}\mu_t \\
m \leftarrow \beta_1 m + (1-\beta_1) g \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2 \qquad
d = \sqrt{v / (1-\beta_2^t)} + \epsilon \\
\theta \leftarrow \theta - \gamma\frac{1-\mu_t}{1-\Pi_t}\frac{g}{d}
- \gamma\frac{\mu_{t+1}}{1-\Pi_t\mu_{t+1}}\frac{m}{d}""",
        "plot": {"lr": 0.1},
    },
    "RAdam": {
        "paper": "Liu et al., *On the Variance of the Adaptive Learning Rate and Beyond* (ICLR 2020)",
        "reference": TORCH.format("RAdam"),
        "math": r"""
m \leftarrow \beta_1 m + (1-\beta_1) g \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2 \\
\rho_\infty = \frac{2}{1-\beta_2} - 1 \qquad \rho_t = \rho_\infty - \frac{2t\beta_2^t}{1-\beta_2^t} \\
\theta \leftarrow \begin{cases}
\theta - \gamma \frac{m}{1-\beta_1^t}\, r_t \frac{\sqrt{1-\beta_2^t}}{\sqrt v + \epsilon},\
r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}} & \rho_t > 5 \\
\theta - \gamma \frac{m}{1-\beta_1^t} & \text{otherwise} \end{cases}""",
        "plot": {"lr": 3e-3},
    },
    "ASGD": {
        "paper": "Polyak & Juditsky, *Acceleration of Stochastic Approximation by Averaging* (1992)",
        "reference": TORCH.format("ASGD"),
        "math": r"""
g \leftarrow g + w\theta \qquad \theta \leftarrow \theta(1 - \lambda\eta) - \eta g \qquad
\bar a \leftarrow \begin{cases} \theta & \mu = 1 \\ \bar a + \mu(\theta - \bar a) & \text{otherwise}
\end{cases} \\
\eta \leftarrow \frac{\gamma}{(1 + \lambda\gamma t)^\alpha} \qquad
\mu \leftarrow \frac{1}{\max(1, t - t_0)}""",
        "plot": {"lr": 3e-3},
    },
    "Rprop": {
        "paper": "Riedmiller & Braun, *A Direct Adaptive Method for Faster Backpropagation Learning: "
        "The RPROP Algorithm* (1993)",
        "reference": TORCH.format("Rprop"),
        "math": r"""
f = \begin{cases} \eta_+ & g g' > 0 \\ \eta_- & g g' < 0 \\ 1 & \text{otherwise}\end{cases}
\qquad \Delta \leftarrow \operatorname{clamp}(\Delta f, \Delta_{\min}, \Delta_{\max}) \\
g \leftarrow 0 \ \text{where } g g' < 0 \qquad \theta \leftarrow \theta - \operatorname{sign}(g)\Delta
\qquad g' \leftarrow g""",
        "plot": {"lr": 0.01},
    },
    "Adafactor": {
        "paper": "Shazeer & Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory Cost* "
        "(ICML 2018)",
        "reference": TORCH.format("Adafactor") + " (single-tensor path)",
        "math": r"""
\hat\beta = 1 - t^{\tau} \qquad \rho = \min(\gamma, 1/\sqrt t) \qquad
\alpha = \max(\epsilon_2, \operatorname{RMS}(\theta))\,\rho \qquad
\theta \leftarrow \theta - \gamma\lambda\theta \\
R \leftarrow \hat\beta R + (1-\hat\beta)\operatorname{mean}_{\text{cols}}(G^2) \qquad
C \leftarrow \hat\beta C + (1-\hat\beta)\operatorname{mean}_{\text{rows}}(G^2) \qquad
\hat V = \frac{R C}{\max(\operatorname{mean}(R), \epsilon_1)} \\
U = \frac{G}{\max(\sqrt{\hat V}, \epsilon_1)} \qquad
\theta \leftarrow \theta - \frac{\alpha U}{\max(1, \operatorname{RMS}(U)/d)}""",
        "plot": {"lr": 0.1},
    },
    "Muon": {
        "paper": "Jordan et al., *Muon: An optimizer for hidden layers in neural networks* (2024)",
        "reference": TORCH.format("Muon") + "; its bfloat16 Newton–Schulz reproduced bit for bit",
        "math": r"""
B \leftarrow \mu B + (1-\mu) g \qquad \tilde B = \begin{cases} (1-\mu) g + \mu B & \text{nesterov} \\
B & \text{otherwise}\end{cases} \\
O = \operatorname{NS}_k^{(a,b,c)}(\tilde B;\ \epsilon) \qquad
\theta \leftarrow \theta - \gamma\lambda\theta - \gamma' O, \quad
\gamma' = \gamma\sqrt{\max(1, A/B)} \ \text{or}\ 0.2\gamma\sqrt{\max(A, B)}""",
        "plot": {"lr": 0.03},
    },
    "LBFGS": {
        "paper": "Liu & Nocedal, *On the limited memory BFGS method for large scale optimization* "
        "(Mathematical Programming, 1989); strong-Wolfe line search of Nocedal & Wright (2006)",
        "reference": TORCH.format("LBFGS") + ", iterate for iterate",
        "math": r"""
s = t d, \quad y = g - g_{\text{prev}} \quad (\text{kept if } y^\top s > 10^{-10}) \qquad
H_0 = \frac{y^\top s}{y^\top y} \\
d = -H g \ \ \text{(two-loop recursion over the newest history\_size pairs)} \qquad
x \leftarrow x + t d""",
        "plot": {"lr": 1.0},
    },
    "LAMB": {
        "paper": "You et al., *Large Batch Optimization for Deep Learning: Training BERT in 76 minutes* "
        "(ICLR 2020)",
        "reference": "`optax.lamb` (optax 0.2.8), live in the parity tests",
        "math": r"""
m \leftarrow \beta_1 m + (1-\beta_1) g \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2 \\
u = \frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t) + \epsilon_{\text{root}}} + \epsilon} + \lambda\theta
\qquad r = \frac{\lVert\theta\rVert}{\lVert u\rVert} \ \ (\text{1 if a norm is 0}) \qquad
\theta \leftarrow \theta - \gamma r u""",
        "plot": {"lr": 0.1},
    },
    "Lion": {
        "paper": "Chen et al., *Symbolic Discovery of Optimization Algorithms* (NeurIPS 2023)",
        "reference": "`lion_pytorch.Lion` 0.2.5 and `optax.lion` 0.2.8, both live in the parity tests",
        "math": r"""
c = \operatorname{sign}(\beta_1 m + (1-\beta_1) g) \qquad
\theta \leftarrow \theta(1 - \gamma\lambda) - \gamma c \qquad m \leftarrow \beta_2 m + (1-\beta_2) g""",
        "plot": {"lr": 0.01},
    },
    "ADOPT": {
        "paper": "Taniguchi et al., *ADOPT: Modified Adam Can Converge with Any β2 with the Optimal "
        "Rate* (NeurIPS 2024)",
        "reference": "`optax.contrib.adopt` (optax 0.2.8), live in the parity tests",
        "math": r"""
k = 0: \quad v \leftarrow g^2 \ \ \text{(no update)} \\
k \geq 1: \quad u = \operatorname{clip}\!\left(\frac{g}{\max(\sqrt v, \epsilon)}, -k^{c}, k^{c}\right)
\qquad m \leftarrow \beta_1 m + (1-\beta_1) u \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2 \\
\theta \leftarrow \theta - \gamma\,(\beta_1 m + (1-\beta_1) u \ \text{if nesterov else } m)""",
        "plot": {"lr": 0.3},
    },
    "ScheduleFreeAdamW": {
        "paper": "Defazio et al., *The Road Less Scheduled* (NeurIPS 2024)",
        "reference": "`schedulefree.AdamWScheduleFree` 1.4.1, live in the parity tests",
        "math": r"""
\gamma_k = \gamma\min\!\left(1, \tfrac{k+1}{\text{warmup}}\right) \qquad
w_k = (k+1)^r \gamma_{\max}^p \qquad c = \frac{w_k}{\sum_{i \le k} w_i} \\
v \leftarrow \beta_2 v + (1-\beta_2) g^2 \qquad
\hat g = \frac{g}{\sqrt{v/(1-\beta_2^{k+1})} + \epsilon} + \lambda y \\
y \leftarrow (1-c) y + c z + \gamma_k(\beta_1(1-c) - 1)\hat g \qquad z \leftarrow z - \gamma_k \hat g""",
        "plot": {"lr": 0.1},
    },
    "ScheduleFreeSGD": {
        "paper": "Defazio et al., *The Road Less Scheduled* (NeurIPS 2024)",
        "reference": "`schedulefree.SGDScheduleFree` 1.4.1, live in the parity tests",
        "math": r"""
\hat g = g + \lambda y \qquad c = \frac{w_k}{\sum_{i \le k} w_i} \\
y \leftarrow (1-c) y + c z + \gamma_k(\beta(1-c) - 1)\hat g \qquad z \leftarrow z - \gamma_k \hat g""",
        "plot": {"lr": 3e-3},
    },
    "Lookahead": {
        "paper": "Zhang et al., *Lookahead Optimizer: k steps forward, 1 step back* (NeurIPS 2019)",
        "reference": "`optax.lookahead` (to rounding) and the paper's Algorithm 1 around live torch "
        "optimizers",
        "math": r"""
\theta \leftarrow \text{inner step}(\theta) \qquad \text{every } k \text{ steps:}\quad
\phi \leftarrow \phi + \alpha(\theta - \phi), \quad \theta \leftarrow \phi""",
        "plot": {"lr": 0.1, "inner": "Adam"},
    },
    "AveragedModel": {
        "paper": "Izmailov et al., *Averaging Weights Leads to Wider Optima and Better Generalization* "
        "(UAI 2018)",
        "reference": "`torch.optim.swa_utils.AveragedModel` (torch 2.13), live in the tests",
        "math": r"""
\bar\theta_{n+1} = \bar\theta_n + \frac{\theta - \bar\theta_n}{n + 1} \ \ \text{(SWA)} \qquad
\bar\theta \leftarrow \delta\bar\theta + (1-\delta)\theta
\ \ \text{(EMA, get\_ema\_multi\_avg\_fn(decay=}\delta))""",
        "plot": {"lr": 0.1, "inner": "Adam"},
    },
}
