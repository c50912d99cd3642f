"""cvcycle: the life cycle of computer-vision models for video analytics, in one self-hosted system."""

__version__ = "0.1.0"
