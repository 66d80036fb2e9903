"""``knnserve train`` (index a dataset, fit the linear head, save a bundle) and ``knnserve tune``
(choose a bundle's search effort for a target recall and save it as a new bundle version)."""

from __future__ import annotations

import argparse
from pathlib import Path

from knnserve.cli.options import (
    NON_NEGATIVE_NUMBER,
    POSITIVE,
    RECALL,
    SEED,
    Ranged,
    add_common_options,
    add_dataset_options,
    add_query_options,
    add_threads_option,
    query_from_args,
)
from knnserve.index.spec import ALIASES, METRICS, STORAGES
from knnserve.training.config import PRECISIONS, CnnConfig

CNN_DEFAULTS = CnnConfig()


def run_train(args: argparse.Namespace) -> int:
    """Train a bundle as the options say and print its summary."""
    from knnserve.data import load_dataset
    from knnserve.features.learned import check_features_available, parse_features
    from knnserve.index import set_num_threads
    from knnserve.outputs import manifest_summary
    from knnserve.train import FeaturesConfig, KnnConfig, LinearConfig, save_trained, train_model
    from knnserve.training.config import CnnConfig

    spec = parse_features(args.features)
    check_features_available(spec)  # without the cnn extra: one line, at once, before the data is read

    config = KnnConfig(
        index=args.index,
        metric=args.metric,
        storage=args.storage,
        preprocess=args.preprocess,
        defaults=query_from_args(args),
        choose_k=args.k == "auto",
        cv_folds=args.cv_folds,
    )
    linear = LinearConfig(loss=args.linear, seed=args.seed)
    features = FeaturesConfig(
        features=args.features,
        cnn=CnnConfig(epochs=args.epochs, patience=None if args.patience == 0 else args.patience, batch_size=args.batch_size,
                      hflip=not args.no_flip, precision=args.precision, threads=args.train_threads, seed=args.seed),
        seed=args.seed,
        extractor_threads=args.threads,
    )
    set_num_threads(args.threads)
    dataset = load_dataset(args.dataset, data_dir=args.data_dir, download=not args.no_download)
    print(f"dataset {dataset.name}: {dataset.x_train.shape[0]} train, {dataset.x_test.shape[0]} test, "
          f"{dataset.x_train.dtype} {dataset.image_shape}, {dataset.n_classes} classes ({dataset.source})")
    result = train_model(dataset, config, linear, features=features, progress=not args.no_progress)
    if spec.kind != "pixels":
        extractor = result.model.extractor
        assert extractor is not None
        print(f"extractor {extractor.record.describe()}")
        if "cnn_test_accuracy" in result.metrics:
            print(f"network: {result.metrics['cnn_epochs_run']} epochs in {result.metrics['cnn_train_seconds']:.1f} s "
                  f"(best epoch {result.metrics['cnn_best_epoch']}, validation accuracy {result.metrics['cnn_val_accuracy']:.2%}), "
                  f"its own softmax on the test split {result.metrics['cnn_test_accuracy']:.2%}")
        if extractor.record.parity is not None:
            parity = extractor.record.parity
            print(f"ONNX vs torch on {parity.rows} validation rows: max abs difference {parity.max_abs_diff:.2g} "
                  f"(<= {parity.tolerance:g}), {parity.knn_disagreements} different k-NN predictions")
    if result.cv is not None:
        best = result.cv.best
        how = "validation rows" if result.cv.folds == 1 else f"cross-validation ({result.cv.folds} folds)"
        print(f"{how} ({result.cv.seconds:.1f} s): k={best.k}, weights={best.weights}, "
              f"preprocess={best.preprocess}, accuracy {best.mean:.2%} ± {best.std:.2%}")
        if args.cv_plot is not None:
            from knnserve.selection.plot import plot_cv_curve

            print(f"cross-validation curve: {plot_cv_curve(result.cv, args.cv_plot, title=dataset.name)}")
    manifest = save_trained(result, dataset, args.out, name=args.name or args.out.name, overwrite=args.overwrite)
    for label, value in manifest_summary(manifest):
        print(f"{label:>18}: {value}")
    print(f"saved bundle to {args.out}")
    return 0


def run_tune(args: argparse.Namespace) -> int:
    """Tune nprobe / efSearch of a bundle on held-out training rows; write the result as a new version."""
    from knnserve.data import load_dataset
    from knnserve.evaluate.tune import TuneSettings, tune_bundle, write_tuned_version

    settings = TuneSettings(
        target_recall=args.target_recall, k=args.k, tune_queries=args.tune_queries, recall_epsilon=args.recall_epsilon,
        seed=args.seed, threads=args.threads, progress=not args.no_progress,
    )
    dataset = load_dataset(args.dataset, data_dir=args.data_dir, download=not args.no_download)
    record = tune_bundle(args.bundle, dataset, settings)
    tried = ", ".join(f"{int(e['value'])}: {e['recall']:.4f}" for e in record.evaluations)
    print(f"recall@{args.k} on {record.held_out_queries} held-out training rows, by {record.parameter}: {tried}")
    if not record.reached:
        print(f"target recall {args.target_recall} not reached ({record.note}); no bundle written")
        return 0
    written = write_tuned_version(args.bundle, record, out=args.out, k=args.k, recall_epsilon=args.recall_epsilon)
    print(f"{record.parameter}={record.value} reaches recall@{args.k} {record.recall:.4f} >= {args.target_recall}; "
          f"wrote {written} (default {record.parameter}={record.value})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train`` and ``tune``."""
    parser = sub.add_parser("train", help="index a dataset, evaluate it on the test split, save a bundle")
    add_common_options(parser)
    add_dataset_options(parser)
    parser.add_argument("--index", default="flat", help=f"{', '.join(ALIASES)} or a FAISS factory string (default: flat)")
    parser.add_argument("--metric", choices=METRICS, default="l2", help="distance (default: l2)")
    parser.add_argument("--storage", choices=STORAGES, default="auto",
                        help="auto keeps uint8 pixels as raw bytes (exact, L2) in IVF lists and HNSW, float32 for Flat "
                             "(fast BLAS batch search); uint8 uses raw bytes for Flat too (4x less memory, slower in "
                             "batch); float32 builds the spec as written (default: auto)")
    add_query_options(parser, training=True)
    add_threads_option(parser)
    parser.add_argument("--preprocess", default="auto",
                        help="k-NN preprocessing: raw, cosine, pca:D, pca:D+cosine, or auto to choose between raw and "
                             "pca:128+cosine by cross-validation on the training split (on learned features: between raw "
                             "and cosine, on the validation rows) (default: auto)")
    parser.add_argument("--cv-folds", type=Ranged(int, 2), default=5, help="folds for --k/--preprocess auto (default: 5)")
    parser.add_argument("--cv-plot", type=Path, default=None, help="with --k auto, write the CV curve (mean ± std per k) to this PNG")
    parser.add_argument("--linear", choices=("softmax", "svm", "none"), default="softmax",
                        help="linear head trained beside the index; learning rate and λ chosen on a validation split "
                             "of the training data (default: softmax)")
    learned = parser.add_argument_group(
        "learned features", "--features cnn trains an embedding network on the training split (needs the extra: "
        'pip install "knnserve[cnn]"); the index and the linear head then work on its embeddings. Serving needs only '
        "onnxruntime. See docs/features.md.")
    learned.add_argument("--features", default="pixels",
                         help="what the heads work on: pixels; cnn (= cnn:small7, 897k parameters: three convolution blocks, the "
                              "last one's 7x7 map into the 128-d embedding), cnn:small (the last map pooled to 3x3, 242k), "
                              "cnn:mid (two convolutions in the second and third blocks), cnn:wide (two convolutions a "
                              "block), cnn:tiny (for smoke tests); or onnx:PATH, an image model of your own "
                              "(float32 [batch, C, H, W] or [batch, H, W, C] in, [batch, D] out; checked against the "
                              "dataset's images here) (default: pixels)")
    learned.add_argument("--epochs", type=Ranged(int, 1, 1000), default=CNN_DEFAULTS.epochs,
                         help=f"most epochs of network training (default: {CNN_DEFAULTS.epochs})")
    learned.add_argument("--patience", type=Ranged(int, 0, 1000), default=CNN_DEFAULTS.patience,
                         help="stop after this many epochs without a better validation accuracy, keeping the best "
                              f"epoch's weights; 0 never stops early (default: {CNN_DEFAULTS.patience})")
    learned.add_argument("--batch-size", type=Ranged(int, 2, 65536), default=CNN_DEFAULTS.batch_size,
                         help=f"images per training step (default: {CNN_DEFAULTS.batch_size})")
    learned.add_argument("--no-flip", action="store_true",
                         help="no horizontal flips in the augmentation (for digits and text, where a flip changes the class)")
    learned.add_argument("--precision", choices=PRECISIONS, default=CNN_DEFAULTS.precision,
                         help="arithmetic of network training: bf16 (bfloat16 autocast; the exported network stays float32), "
                              "fp32, or auto = bf16 where the processor has bf16 instructions (avx512_bf16 or amx_bf16, "
                              f"read at run time), else fp32 (default: {CNN_DEFAULTS.precision})")
    learned.add_argument("--train-threads", type=POSITIVE, default=None,
                         help="torch threads while training the network (default: one per core)")
    parser.add_argument("--seed", type=SEED, default=0,
                        help="seed of the validation split, the network's and the linear head's training (default: 0)")
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    parser.add_argument("--name", default=None, help="model name (default: the --out folder name)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --out")
    parser.set_defaults(handler=run_train)

    tune = sub.add_parser(
        "tune",
        help="choose a bundle's nprobe / efSearch for a target recall@k on held-out training rows; "
             "write it as a new bundle version beside the old one",
    )
    add_common_options(tune)
    add_dataset_options(tune)
    tune.add_argument("--bundle", type=Path, required=True, help="the bundle (IVF or HNSW) to tune; it is not changed")
    tune.add_argument("--target-recall", type=RECALL, required=True, help="recall@k to reach, a fraction in (0, 1]")
    tune.add_argument("--k", type=POSITIVE, default=10, help="neighbors scored by recall@k (default: 10)")
    tune.add_argument("--tune-queries", type=POSITIVE, default=1000, help="training rows held out as queries (default: 1000)")
    tune.add_argument("--recall-epsilon", type=NON_NEGATIVE_NUMBER, default=1e-3,
                      help="slack on the true k-th distance (Euclidean / L1 scale) for recall (default: 1e-3)")
    tune.add_argument("--seed", type=SEED, default=0, help="seed of the held-out rows (default: 0)")
    add_threads_option(tune)
    tune.add_argument("--out", type=Path, default=None,
                      help="bundle folder to write (default: the next version beside --bundle, e.g. models/NAME/2 "
                           "after models/NAME/1)")
    tune.set_defaults(handler=run_tune)


__all__ = ["register", "run_train", "run_tune"]
