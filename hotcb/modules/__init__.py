"""Kernel modules. ``cb`` (hot callbacks) is the one hotcb ships."""
