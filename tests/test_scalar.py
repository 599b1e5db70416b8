"""One "to a plain Python scalar" helper, used by the ledger, the Lightning adapter and the
built-ins; it never raises for an odd value (only the user's Ctrl-C goes through)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from hotcb.ledger import json_default
from hotcb.scalar import to_scalar


class ItemRaises:
    """A value whose ``item`` is hostile: reading it exits."""

    @property
    def item(self) -> Any:
        raise SystemExit("item")

    def __repr__(self) -> str:
        return "<ItemRaises>"


def test_one_element_values_become_python_scalars_others_stay() -> None:
    assert to_scalar(torch.tensor([[2.5]])) == 2.5 and type(to_scalar(torch.tensor(3))) is int
    assert type(to_scalar(np.float32(0.5))) is float
    many = torch.ones(3)
    assert to_scalar(many) is many  # more than one element: left as it is
    assert to_scalar(np.arange(3)) is not None
    assert to_scalar("loss") == "loss" and to_scalar(None) is None


def test_a_value_whose_item_raises_is_left_alone_in_the_ledger_too() -> None:
    odd = ItemRaises()
    assert to_scalar(odd) is odd
    record = {"loss": torch.tensor(0.25), "odd": odd, "grads": torch.zeros(2)}
    assert json.loads(json.dumps(record, default=json_default)) == {
        "loss": 0.25,
        "odd": "<ItemRaises>",
        "grads": "tensor([0., 0.])",
    }
