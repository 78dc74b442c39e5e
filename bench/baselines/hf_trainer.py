"""The transformers Trainer on the same packed blocks, model, batch, optimizer and schedule.

    torchrun --nproc-per-node P bench/baselines/hf_trainer.py --data train.npy --config EXPORT_DIR --steps N
Prints one JSON line on rank 0: steady-state tokens/s from the end of step --skip to the last step.
"""

from __future__ import annotations

import json
import tempfile
import time

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

import arguments  # bench/baselines/arguments.py: the script's own directory is on sys.path


class Blocks(torch.utils.data.Dataset):
    def __init__(self, path: str):
        self.blocks = np.load(path, mmap_mode="r")

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, index: int) -> dict:
        ids = torch.from_numpy(self.blocks[index].astype(np.int64))
        return {"input_ids": ids, "labels": ids}


class StepClock(TrainerCallback):
    def __init__(self, marks: tuple[int, int]):
        self.marks, self.times = marks, {}

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step in self.marks:
            self.times[state.global_step] = time.time()


def main() -> None:
    args = arguments.parse()
    config = AutoConfig.from_pretrained(args.config)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    dataset = Blocks(args.data)
    clock = StepClock((args.skip, args.steps))
    with tempfile.TemporaryDirectory() as out:
        training = TrainingArguments(
            output_dir=out, max_steps=args.steps, per_device_train_batch_size=args.micro_batch,
            learning_rate=args.lr, weight_decay=0.01, warmup_steps=20, lr_scheduler_type="cosine",
            max_grad_norm=1.0, logging_steps=10_000, save_strategy="no", report_to=[], use_cpu=True,
            dataloader_num_workers=0, ddp_backend="gloo", disable_tqdm=True, seed=0,
        )
        trainer = Trainer(model=model, args=training, train_dataset=dataset, callbacks=[clock])
        trainer.train()
        if trainer.is_world_process_zero():
            world = training.world_size
            tokens = (args.steps - args.skip) * args.micro_batch * world * dataset.blocks.shape[1]
            print(json.dumps({"tokens_per_s": tokens / (clock.times[args.steps] - clock.times[args.skip])}))


if __name__ == "__main__":
    main()
