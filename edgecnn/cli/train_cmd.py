"""`edgecnn train`: the float reference trainer."""

from __future__ import annotations

import sys
from pathlib import Path

from edgecnn.cli.common import (add_command, add_data_args, add_width_arg, arch_options, data_folder, emit_json,
                                labels_for, load_images, nonnegative_float, nonnegative_int, positive_float,
                                positive_int)


def register(sub) -> None:
    p = add_command(sub, "train", help="train a float model with the reference trainer",
                       description="Train a model on a dataset (IDX grey images, or CIFAR-10 colour batches) "
                                   "and save a float checkpoint (.npz).")
    p.add_argument("--arch", required=True, help="lenet5, lenet5-classic, resnet8, dscnn or mobilenet-v1")
    add_width_arg(p)
    add_data_args(p)
    p.add_argument("--epochs", type=positive_int, default=10, help="passes over the training set")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per optimizer step")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="the update rule")
    p.add_argument("--lr", type=positive_float, default=None, help="base learning rate (default: adam 1e-3, sgd 0.05)")
    p.add_argument("--weight-decay", type=nonnegative_float, default=0.0, help="L2 penalty on the weights")
    p.add_argument("--schedule", choices=("cosine", "step", "constant"), default="cosine", help="learning-rate schedule")
    p.add_argument("--augment-shift", type=nonnegative_int, default=0, metavar="PIXELS", help="random shift augmentation")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="initialisation and shuffling seed")
    p.add_argument("--limit", type=positive_int, default=None, help="use only the first N training images (default: all)")
    p.add_argument("--resume", action="store_true", help="continue the training saved in --out")
    p.add_argument("--out", required=True, metavar="MODEL.npz", help="the float checkpoint to write")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from edgecnn.model import build
    from edgecnn.model.checkpoint import load_checkpoint, save_checkpoint
    from edgecnn.train.trainer import TrainConfig, TrainState, config_dict, train

    from edgecnn.errors import CheckpointError, EdgecnnError
    from edgecnn.fileio import check_writable

    out = Path(args.out)
    if out.suffix.lower() != ".npz":
        raise EdgecnnError(f"--out must name a .npz checkpoint, got {out.name}")
    options = arch_options(args)
    build(args.arch, **options)  # an unknown name or a bad width fails here, before any data is read
    check_writable(out)  # fail now, not after the first epoch
    from edgecnn.train.inputs import model_input

    # the model's input shape comes from the data (LeNets: padded to 32x32x1)
    x_train, y_train = load_images(args, "train", args.limit)
    x_test, y_test = load_images(args, "test")
    if args.arch in ("lenet5", "lenet5-classic") and x_train.ndim == 4:
        raise EdgecnnError(f"{args.arch} takes grey images; {args.dataset} is colour "
                           f"({'x'.join(map(str, x_train.shape[1:]))}): train resnet8 or mobilenet-v1 on it")
    x_train, x_test = model_input(args.arch, x_train), model_input(args.arch, x_test)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                         weight_decay=args.weight_decay, schedule=args.schedule,
                         augment_shift=args.augment_shift, seed=args.seed)
    state, opt_state = TrainState(), None
    if args.resume and out.exists():
        model, saved, opt_state = load_checkpoint(out, with_state=True)
        if model.arch != args.arch:
            raise CheckpointError(f"{out} holds a {model.arch} model, not {args.arch}; cannot resume it as {args.arch}")
        if options and build(args.arch, labels=model.labels, input_shape=model.input_shape,
                             **options).total_params != model.total_params:
            raise CheckpointError(f"{out} holds a {model.arch} of another width than --width {args.width}; "
                                  "resume without --width or with the width it was trained with")
        for key, value in opt_state.items():
            if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
                raise CheckpointError(f"{out}: optimizer state {key} holds NaN or infinite values")
        state = TrainState(epoch=saved.get("epoch", 0), seconds=saved.get("seconds", 0.0),
                           history=saved.get("history", []))
    else:
        model = build(args.arch, labels=labels_for(args.dataset), input_shape=x_train.shape[1:], **options)
        model.init_params(args.seed)

    def checkpoint(model, state, opt):
        save_checkpoint(out, model, {"epoch": state.epoch, "seconds": state.seconds, "history": state.history,
                                     "config": config_dict(config), "dataset": args.dataset}, opt.state())
        if not args.json and not args.quiet:
            h = state.history[-1]
            print(f"epoch {h['epoch']}: loss {h['loss']:.4f}  train {h['train_accuracy']:.4%}  "
                  f"test {h['test_accuracy']:.4%}  {h['seconds']:.1f}s", file=sys.stderr)

    if state.epoch >= config.epochs and not args.json and not args.quiet:
        print(f"{out} already has {state.epoch} epochs; nothing to resume (raise --epochs to train further)",
              file=sys.stderr)
    state = train(model, (x_train, y_train), (x_test, y_test), config, state=state, opt_state=opt_state,
                  progress=False if args.quiet or args.json else None, on_epoch=checkpoint)
    test_acc = state.history[-1]["test_accuracy"] if state.history else None
    result = {"arch": model.arch, "epochs": state.epoch, "seconds": round(state.seconds, 3),
              "test_accuracy": test_acc, "out": str(out), "data": data_folder(args)}
    if args.json:
        emit_json(result)
    else:
        print(f"trained {model.arch} for {state.epoch} epochs in {state.seconds:.1f}s: "
              f"test accuracy {test_acc if test_acc is None else format(test_acc, '.2%')}, saved {out}")
    return 0
