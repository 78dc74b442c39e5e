"""llaunch: one recipe from laptop to many nodes."""

__version__ = "0.1.0"
