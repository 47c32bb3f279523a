"""The demo: a generated Fujian province published through a real gateway."""
