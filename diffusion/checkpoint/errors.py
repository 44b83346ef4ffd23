"""The one error type the checkpoint layer raises for files it cannot or will not load."""


class CheckpointError(ValueError):
    """A model file is unreadable, unsafe, or not a layout we know. The message says which."""
