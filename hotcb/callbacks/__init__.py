"""The built-in callbacks under the module paths of the reference project's docs
(``hotcb.callbacks.timing``, ...): each module here re-exports the class of
:mod:`hotcb.modules.cb.callbacks` of the same name, so a ``target`` or ``--path`` written for
the reference loads the same callback. New configs should use
``hotcb.modules.cb.callbacks.<module>``.

Example:
    >>> from hotcb.callbacks.timing import TimingCallback
    >>> from hotcb.modules.cb.callbacks import timing
    >>> TimingCallback is timing.TimingCallback
    True
"""
