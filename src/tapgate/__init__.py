"""tapgate: self-hosted multi-factor authentication with push approval on the user's phone."""

__version__ = "0.1.0"
