"""Latent Bridge: translate and search across modality embedding spaces through a graph of translators."""

from importlib.metadata import version

__version__ = version("latent-bridge")  # pyproject.toml is the one source
