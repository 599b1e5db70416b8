"""Hugging Face Trainer + hotcb: a tiny randomly initialised GPT-2 on synthetic tokens.

    pip install 'hydra-hotcb[hf]'
    python examples/hf_train.py --steps 500
    hotcb cb set heartbeat every=10          # from another terminal, while it trains

No download: the model is built from a small GPT2Config. The run dir is
``hf_out/hotcb`` (or ``--run-dir``).
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
import transformers

from hotcb.adapters.hf import HotHFCallback


class Tokens(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, n: int = 512) -> None:
        self.ids = torch.randint(0, 128, (n, 32), generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--run-dir", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(vocab_size=128, n_positions=32, n_embd=32, n_layer=2, n_head=2)
    )
    hot = HotHFCallback(
        run_dir=args.run_dir,
        callbacks={
            "heartbeat": {
                "_target_": "hotcb.modules.cb.callbacks.heartbeat.HeartbeatCallback",
                "every": 50,
            },
            "anomaly_guard": {
                "_target_": "hotcb.modules.cb.callbacks.anomaly_guard.AnomalyGuardCallback",
                "action": "stop",
            },
        },
    )
    training_args = transformers.TrainingArguments(
        output_dir="hf_out",
        max_steps=args.steps,
        per_device_train_batch_size=8,
        logging_steps=10,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    transformers.Trainer(
        model=model, args=training_args, train_dataset=Tokens(), callbacks=[hot]
    ).train()


if __name__ == "__main__":
    main()
