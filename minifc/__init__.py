"""minifc: fine-tune Gemma 3, FunctionGemma and Llama 3.x to call functions, in plain PyTorch."""

__version__ = "0.1.0"
