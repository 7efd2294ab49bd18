"""`extensor.nn`: Module, Parameter, layers, losses, initialisation and the functional interface.

The same names and semantics as torch.nn for what the two share::

    from extensor import nn
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
    criterion = nn.CrossEntropyLoss()
"""

from extensor.nn import functional, init
from extensor.nn.activation import GELU, Identity, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from extensor.nn.container import ModuleList, Sequential
from extensor.nn.conv import Conv2d
from extensor.nn.dropout import Dropout
from extensor.nn.flatten import Flatten
from extensor.nn.linear import Linear
from extensor.nn.loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from extensor.nn.module import IncompatibleKeys, Module
from extensor.nn.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from extensor.nn.parameter import Parameter
from extensor.nn.pooling import AvgPool2d, MaxPool2d
from extensor.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell
from extensor.nn.sparse import Embedding
from extensor.nn.transformer import MultiheadAttention, TransformerBlock

__all__ = [
    "GELU",
    "GRU",
    "LSTM",
    "RNN",
    "AvgPool2d",
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Embedding",
    "Flatten",
    "GRUCell",
    "Identity",
    "IncompatibleKeys",
    "LSTMCell",
    "LayerNorm",
    "Linear",
    "LogSoftmax",
    "MSELoss",
    "MaxPool2d",
    "Module",
    "ModuleList",
    "MultiheadAttention",
    "Parameter",
    "RNNBase",
    "RNNCell",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "TransformerBlock",
    "functional",
    "init",
]
