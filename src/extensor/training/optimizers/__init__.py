"""Optimizers with torch.optim's interface, each one fused numba kernel over flat buffers.

``from extensor.training.optimizers import SGD, Adam, AdamW, RMSprop, LARS`` -- the seed's five --
and the rest of torch.optim 2.13 (`Adagrad`, `Adadelta`, `Adamax`, `NAdam`, `RAdam`, `ASGD`,
`Rprop`, `Adafactor`, `Muon`, `LBFGS`), each identical to torch's, plus optimizers torch lacks,
each identical to a named reference (`LAMB`, `Lion`, `ADOPT`, `ScheduleFreeAdamW`,
`ScheduleFreeSGD`). See `optimizer.py` for the shared machinery and the README for how to add an
optimizer in one short file.
"""

from extensor.training.optimizers.adadelta import Adadelta
from extensor.training.optimizers.adafactor import Adafactor
from extensor.training.optimizers.adagrad import Adagrad
from extensor.training.optimizers.adam import Adam, AdamW
from extensor.training.optimizers.adamax import Adamax
from extensor.training.optimizers.adopt import ADOPT
from extensor.training.optimizers.asgd import ASGD
from extensor.training.optimizers.lamb import LAMB
from extensor.training.optimizers.lars import LARS, exclude_from_adaptation
from extensor.training.optimizers.lbfgs import LBFGS
from extensor.training.optimizers.lion import Lion
from extensor.training.optimizers.muon import Muon
from extensor.training.optimizers.nadam import NAdam
from extensor.training.optimizers.optimizer import Optimizer, ParamGroup, Run
from extensor.training.optimizers.radam import RAdam
from extensor.training.optimizers.rmsprop import RMSprop
from extensor.training.optimizers.rprop import Rprop
from extensor.training.optimizers.schedule_free import ScheduleFreeAdamW, ScheduleFreeSGD
from extensor.training.optimizers.sgd import SGD

__all__ = [
    "ADOPT",
    "ASGD",
    "LAMB",
    "LARS",
    "LBFGS",
    "SGD",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Lion",
    "Muon",
    "NAdam",
    "Optimizer",
    "ParamGroup",
    "RAdam",
    "RMSprop",
    "Rprop",
    "Run",
    "ScheduleFreeAdamW",
    "ScheduleFreeSGD",
    "exclude_from_adaptation",
]
