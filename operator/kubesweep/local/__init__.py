"""The local back end: trials as processes on this machine."""
