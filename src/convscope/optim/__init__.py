"""Optimizers and learning-rate schedulers with PyTorch's update rules, on NumPy.

``SGD``, ``Adam`` and ``AdamW`` update ``param.data`` in place from ``param.grad`` (parameters
without a gradient are skipped), and ``lr_scheduler.StepLR`` / ``CosineAnnealingLR`` set their
learning rates; values, state and ``state_dict`` layout follow ``torch.optim``.

>>> import convscope as cs
>>> x = cs.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=cs.float64)
>>> y = cs.tensor([5.0, 6.0], dtype=cs.float64)
>>> w = cs.nn.Parameter(cs.zeros(2, dtype=cs.float64))
>>> opt = cs.optim.SGD([w], lr=0.02, momentum=0.9)
>>> for _ in range(300):
...     opt.zero_grad()
...     ((x @ w - y) ** 2).mean().backward()
...     opt.step()
>>> [round(v, 4) for v in w.tolist()]  # the least-squares solution is (-4, 4.5)
[-4.0, 4.5]
"""

from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "lr_scheduler"]
