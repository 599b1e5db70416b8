"""Built-in callbacks, one per module. Each is also an option of the Hydra config group
``hotcb/callbacks`` (see ``hotcb/conf/hotcb/callbacks/``)."""
