"""Ready-made networks built from `extensor.nn`: classifiers for the built-in image data and
character-level language models for text.

- `MLP`, `LeNet5` and `build_model(name, input_shape, num_classes)`: see `classifiers`.
- `GPT` (a small decoder-only Transformer) and `CharLSTM`, with `generate` for sampling: see
  `language`.
"""

from extensor.models.classifiers import MLP, MODEL_NAMES, LeNet5, build_model
from extensor.models.language import GPT, CharLSTM, LanguageModel, generate

__all__ = ["GPT", "MLP", "MODEL_NAMES", "CharLSTM", "LanguageModel", "LeNet5", "build_model", "generate"]
