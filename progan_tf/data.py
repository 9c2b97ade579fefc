"""Reading multi-resolution TFRecord datasets: tf.data pipelines and the fade of real images.

Two on-disk formats are read: this project's (`dataset.json` plus sharded levels, see
`dataset_io`) and the official release's (`<name>-rNN.tfrecords`, one file per level, with
an optional `<name>-rxx.labels` numpy array). Both store `shape` [C, H, W] and raw CHW
`data`; pipelines yield float32 images [N, R, R, C] in [-1, 1] and one-hot labels
[N, num_labels] (float32; [N, 0] for unlabelled data).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from progan_tf.images import class_rows


class DatasetError(ValueError):
    """A dataset that cannot be read as asked; the message names the file and the fix."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a dataset directory holds."""

    path: str
    name: str
    resolution: int
    channels: int
    num_images: int  # -1 when unknown (official format)
    num_labels: int
    files: dict[int, list[str]]  # resolution -> absolute TFRecord paths
    compression: str = ""
    labels_file: str | None = None  # official format: [N, num_labels] float32, record order
    label_names: tuple[str, ...] = ()

    def level_files(self, resolution: int) -> list[str]:
        """The TFRecord files of one level; DatasetError if the dataset lacks it."""
        if resolution > self.resolution:
            raise DatasetError(
                f"{self.path} holds images up to {self.resolution}x{self.resolution}; "
                f"{resolution}x{resolution} needs a dataset made at that resolution or more "
                f"(tools/dataset_tool.py --resolution={resolution}), or a lower --resolution"
            )
        files = self.files.get(resolution, [])
        missing = [f for f in files if not os.path.exists(f)]
        if not files or missing:
            what = missing[0] if missing else f"level {resolution}x{resolution}"
            raise DatasetError(f"{self.path}: {what} is missing; re-create the dataset")
        return files


_OFFICIAL = re.compile(r"^(?P<name>.+)-r(?P<stage>\d\d)\.tfrecords$")


def load_info(path: str | os.PathLike) -> DatasetInfo:
    """Reads `dataset.json`, or recognises the official release's file names."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise DatasetError(
            f"{path} is a file, not a dataset directory (make one with tools/dataset_tool.py)"
        )
    if not os.path.isdir(path):
        raise DatasetError(
            f"dataset directory {path} does not exist (make one with tools/dataset_tool.py)"
        )
    meta_path = os.path.join(path, "dataset.json")
    if os.path.exists(meta_path):
        try:
            with open(meta_path) as f:
                meta = json.load(f)
            files = {
                int(r): [os.path.join(path, n) for n in names]
                for r, names in meta["levels"].items()
            }
            return DatasetInfo(
                path=path,
                name=meta["name"],
                resolution=int(meta["resolution"]),
                channels=int(meta["channels"]),
                num_images=int(meta["num_images"]),
                num_labels=int(meta.get("num_labels", 0)),
                files=files,
                compression=meta.get("compression", ""),
                label_names=tuple(meta.get("label_names", ())),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise DatasetError(f"{meta_path} is not a valid dataset description: {error}") from None
    return _load_official(path)


def _load_official(path: str) -> DatasetInfo:
    files, names = {}, set()
    for file in sorted(glob.glob(os.path.join(path, "*.tfrecords"))):
        match = _OFFICIAL.match(os.path.basename(file))
        if match:
            files[2 ** int(match["stage"])] = [file]
            names.add(match["name"])
    if not files:
        raise DatasetError(
            f"{path} holds neither dataset.json nor official-format <name>-rNN.tfrecords files"
        )
    if len(names) > 1:
        raise DatasetError(f"{path} mixes datasets {sorted(names)}; keep one per directory")
    resolution = max(files)
    top = _first_record(files[resolution][0])
    channels = int(top["shape"][0])
    labels_files = glob.glob(os.path.join(path, "*.labels"))
    num_labels = 0
    if labels_files:
        num_labels = int(np.load(labels_files[0], allow_pickle=False).shape[1])
    return DatasetInfo(
        path=path,
        name=names.pop(),
        resolution=resolution,
        channels=channels,
        num_images=-1,
        num_labels=num_labels,
        files=files,
        labels_file=labels_files[0] if labels_files else None,
    )


def _first_record(file: str, compression: str = "") -> dict:
    try:
        record = next(iter(tf.data.TFRecordDataset(file, compression_type=compression)))
    except (StopIteration, tf.errors.OpError) as error:
        raise DatasetError(f"{file} cannot be read as TFRecords: {error}") from None
    example = tf.train.Example.FromString(record.numpy())
    return {
        k: list(v.int64_list.value) for k, v in example.features.feature.items() if k == "shape"
    }


_FEATURES = {
    "shape": tf.io.FixedLenFeature([3], tf.int64),
    "data": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64, default_value=-1),
}


def decode_batch(
    serialized: tf.Tensor, resolution: int, channels: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """Serialized Examples [N] -> (uint8 images [N, R, R, C], int64 labels [N], -1 if none)."""
    parsed = tf.io.parse_example(serialized, _FEATURES)
    expected = tf.constant([channels, resolution, resolution], tf.int64)
    check = tf.debugging.assert_equal(
        parsed["shape"],
        tf.broadcast_to(expected, tf.shape(parsed["shape"])),
        message=f"records whose shape is not [C, H, W] = [{channels}, {resolution}, {resolution}]",
    )
    with tf.control_dependencies([check]):
        data = tf.io.decode_raw(parsed["data"], tf.uint8)
    images = tf.reshape(data, [-1, channels, resolution, resolution])
    # a static batch stays static
    images.set_shape([serialized.shape[0], channels, resolution, resolution])
    return tf.transpose(images, [0, 2, 3, 1]), parsed["label"]


def to_float(images: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def to_uint8(images: tf.Tensor) -> tf.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounded and clipped."""
    return tf.cast(
        tf.clip_by_value(tf.round((tf.cast(images, tf.float32) + 1.0) * 127.5), 0, 255), tf.uint8
    )


def random_mirror(images: tf.Tensor, seed: tf.Tensor | int | None = None) -> tf.Tensor:
    """Flips each image [N, H, W, C] left-right with probability 0.5. With a `seed` (an int or
    an int64 [2] tensor) the flips are a pure function of it (stateless), else random."""
    shape = [tf.shape(images)[0], 1, 1, 1]
    if seed is None:
        uniform = tf.random.uniform(shape)
    else:
        uniform = tf.random.stateless_uniform(shape, tf.cast(tf.broadcast_to(seed, [2]), tf.int64))
    return tf.where(uniform < 0.5, tf.reverse(images, axis=[2]), images)


def flip_seed(position: tf.Tensor, seed: int) -> tf.Tensor:
    """int64 [2] seed of a batch's mirror flips, from the stream position of its first record:
    the same flips on a restarted stream."""
    return position + tf.constant([seed, 0], tf.int64) * 1_000_003


def prepare_reals(images: tf.Tensor, seed: tf.Tensor | None = None) -> tf.Tensor:
    """uint8 [N, R, R, C] -> float32 in [-1, 1], flipped by `seed` (`random_mirror`) if given.
    Float images pass unchanged but for the flips. The training step runs it on the device, so
    that uint8 images (a quarter of float32's bytes) cross from the host."""
    if images.dtype == tf.uint8:
        images = to_float(images)
    return images if seed is None else random_mirror(images, seed=seed)


def fade_reals(images: tf.Tensor, alpha: tf.Tensor | float) -> tf.Tensor:
    """`lerp(x, upsample(avgpool(x)), 1 - alpha)` (reference §1): reals blurred like faded fakes."""
    n, h, w, c = (tf.shape(images)[i] for i in range(4))
    blurred = tf.reduce_mean(
        tf.reshape(images, [n, h // 2, 2, w // 2, 2, c]), axis=[2, 4], keepdims=True
    )
    blurred = tf.reshape(tf.tile(blurred, [1, 1, 2, 1, 2, 1]), tf.shape(images))
    alpha = tf.cast(alpha, images.dtype)
    return images + (blurred - images) * (1.0 - alpha)


@dataclasses.dataclass(frozen=True)
class StreamPosition:
    """Where a training stream stands: `epoch` and the number of records of it already read."""

    epoch: int = 0
    index: int = 0


# Records placed, or copies gathered, per call when spreading a class-balanced epoch's copies
# (ClassCopies.spread): tf.data functions per record would cost the training step CPU time.
_PLACE_BATCH = 256


def shuffle_records(info: DatasetInfo, resolution: int, records: int, megabytes: int) -> int:
    """Records per shuffle block at `resolution`: `records` if given (> 0), else as many images
    as fit in `megabytes` (at least one), as the official reader sizes its shuffle buffer."""
    if records > 0:
        return int(records)
    image_bytes = resolution * resolution * info.channels
    return max(1, ((int(megabytes) << 20) - 1) // image_bytes + 1)


def _random_order(values, seed) -> tf.Tensor:
    """A stateless random permutation of the leading axis shared by the tensors in `values`."""
    first = tf.nest.flatten(values)[0]
    return tf.argsort(tf.random.stateless_uniform([tf.shape(first)[0]], seed))


def _permuted(values, seed):
    """The leading axis of every tensor in `values`, in one stateless random order."""
    order = _random_order(values, seed)
    return tf.nest.map_structure(lambda v: tf.gather(v, order), values)


def block_shuffled(records: tf.data.Dataset, seed, shuffle_buffer: int) -> tf.data.Dataset:
    """Each block of `shuffle_buffer` records in a random order (`_permuted`'s), taken from the
    block a 64th at a time: no second copy of a whole block (about 1 GB of encoded records at
    1024x1024) is ever gathered."""
    chunk = max(1, shuffle_buffer // 64)

    def block_order(block, values):
        order = _random_order(values, seed + tf.stack([block + 1, 0]))
        return (
            tf.data.Dataset.from_tensor_slices(order)
            .batch(chunk)
            .map(lambda k: tf.nest.map_structure(lambda v: tf.gather(v, k), values))
            .unbatch()
        )

    return records.batch(shuffle_buffer).enumerate().flat_map(block_order)


class ClassCopies:
    """Class-balanced epochs: each record of class c appears `class_repeats[c]` times.
    Records are serialized examples with a `label` feature (`labels_in_records`), or
    (serialized, one-hot label) pairs (the official format)."""

    def __init__(self, class_repeats: Sequence[int], labels_in_records: bool = True):
        self.class_repeats, self.labels_in_records = tuple(class_repeats), labels_in_records

    def copies_of(self, record) -> tf.Tensor:
        """How many times `record` (serialized, or (serialized, label)) appears in an epoch; a
        batch of records gives a vector of counts."""
        record = record if isinstance(record, tuple) else (record,)
        if not self.labels_in_records:
            label = tf.argmax(record[1], axis=-1)
        else:
            label = tf.io.parse_example(record[0], {"label": _FEATURES["label"]})["label"]
        repeats = self.class_repeats
        return tf.gather(
            tf.constant(repeats, tf.int64), tf.clip_by_value(label, 0, len(repeats) - 1)
        )

    def repeated(self, *record):
        """One record as a dataset of its class's number of copies (in a row: unshuffled epochs)."""
        return tf.data.Dataset.from_tensors(record if len(record) > 1 else record[0]).repeat(
            self.copies_of(record)
        )

    def spread(self, records, epoch_seed, shuffle_buffer: int, records_per_epoch: int):
        """The epoch as a random order of every copy, with a record's c copies evenly spread.

        Copy j of a record with c copies is given the place (j + u) / c in [0, 1), u uniform per
        record and epoch: a common record (c = 1) a uniform random place, a rare one's copies
        1/c apart. The epoch is read as R = max(class_repeats) segments of places [s/R, (s+1)/R),
        one read of the records each, every block of `shuffle_buffer` records in a segment in
        the order of its places. Blocks of a segment that fit the buffer give exactly the
        order of the places; larger segments keep each record's copies about a segment apart.
        """
        rounds = max(self.class_repeats)
        # a stream of its own
        offset_seed = tf.random.experimental.stateless_fold_in(epoch_seed, -1)

        def offsets(i):
            """u of the records numbered `i` (int64 [n]): one stateless draw per record."""
            return tf.map_fn(
                lambda k: tf.random.stateless_uniform(
                    [], tf.random.experimental.stateless_fold_in(offset_seed, k), dtype=tf.float64
                ),
                i,
                fn_output_signature=tf.float64,
            )

        def segment(s):
            def places(i, records):
                """Of a batch of records, those with a copy in segment s, and that copy's place."""
                c = tf.cast(self.copies_of(records), tf.float64)
                u = offsets(i)
                s_ = tf.cast(s, tf.float64)
                # Copy j is in segment s if s <= (j + u) * R / c < s + 1: at most one j, this one.
                j = tf.math.ceil(s_ * c / rounds - u)
                inside = j < (s_ + 1) * c / rounds - u
                return tf.nest.map_structure(
                    lambda v: tf.boolean_mask(v, inside), ((j + u) / c, records)
                )

            chosen = records.enumerate().batch(_PLACE_BATCH).map(places).unbatch()
            return (
                chosen.batch(shuffle_buffer)
                .map(
                    lambda where, values: tf.nest.map_structure(
                        lambda v: tf.gather(v, tf.argsort(where)), values
                    )
                )
                .unbatch()
            )

        if 0 <= records_per_epoch <= shuffle_buffer:
            return self._whole_epoch(records, offsets, shuffle_buffer)
        return tf.data.Dataset.range(rounds).flat_map(segment)

    def _whole_epoch(self, records, offsets, shuffle_buffer: int):
        """`spread` for an epoch whose records fit one shuffle block: the same order (every
        copy by its place), from one read of the records instead of R."""
        block = records.enumerate().batch(shuffle_buffer)

        def spread(i, values):
            c = self.copies_of(values)
            u = offsets(i)
            record = tf.repeat(tf.range(tf.size(c, tf.int64)), c)  # the record of each copy
            first = tf.gather(tf.cumsum(c, exclusive=True), record)
            j = tf.cast(tf.range(tf.size(record, tf.int64)) - first, tf.float64)  # copy j of c
            where = (j + tf.gather(u, record)) / tf.cast(tf.gather(c, record), tf.float64)
            order = tf.gather(record, tf.argsort(where))
            # Copies gathered a batch at a time: the epoch's copies are never all in memory.
            return (
                tf.data.Dataset.from_tensor_slices(order)
                .batch(_PLACE_BATCH)
                .map(lambda k: tf.nest.map_structure(lambda v: tf.gather(v, k), values))
                .unbatch()
            )

        return block.flat_map(spread)


def make_dataset(
    info: DatasetInfo,
    resolution: int,
    batch_size: int,
    *,
    shuffle_buffer: int = 4096,
    mirror: bool = False,
    repeat: bool = True,
    shuffle: bool = True,
    seed: int = 0,
    start: StreamPosition = StreamPosition(),
    with_position: bool = False,
    class_repeats: Sequence[int] = (),
    input_context: tf.distribute.InputContext | None = None,
    as_uint8: bool = False,
) -> tf.data.Dataset:
    """Batches of (images float32 [B, R, R, C] in [-1, 1], one-hot labels [B, num_labels]) and,
    `with_position`, the stream position after the batch (int64 [2]: epoch, records read).
    `as_uint8`: the images stay uint8 and unflipped, and with `mirror` each batch also carries
    its flip seed (int64 [2], after the position): `prepare_reals(images, seed)` gives what the
    float stream would have (the training step does it on the device).

    The order is a pure function of (`seed`, `resolution`, epoch): each epoch shuffles the
    files, interleaves them deterministically and permutes each block of `shuffle_buffer`
    *records* (the official reader's buffer is sized in MB; the dataset tool writes records
    in shuffled order, as the reference's does). Mirror flips are drawn from the stream
    position. So a stream restarted at `start` (saved from a position) continues exactly;
    restarting reads and drops at most one epoch of raw records.

    `class_repeats` (labelled data; one count per class, `class_repeats_for`): each record of
    class c appears that many times in every epoch, its copies spread evenly over a shuffled
    epoch (`ClassCopies.spread`). The stream stays a pure function of its arguments.

    `batch_size` is the batch of this pipeline: the per-replica batch under a strategy, whose
    `input_context` shards the files (or, with fewer files than pipelines, the records).
    """
    files = info.level_files(resolution)
    autotune = tf.data.AUTOTUNE
    num_labels = info.num_labels
    label_array = (
        np.load(info.labels_file, allow_pickle=False).astype(np.float32)
        if info.labels_file
        else None
    )
    records_per_epoch = len(label_array) if label_array is not None else info.num_images
    shard_files = (
        label_array is None
        and input_context is not None
        and len(files) >= input_context.num_input_pipelines
    )
    pipelines = input_context.num_input_pipelines if input_context is not None else 1
    if not shard_files and records_per_epoch < pipelines:  # an empty shard would loop forever
        raise DatasetError(
            f"{info.path}: {records_per_epoch} image(s) at {resolution}x{resolution} for "
            f"{pipelines} workers; each worker reads its own share and needs at least one: use "
            "fewer workers or more images"
        )

    copies = ClassCopies(class_repeats, labels_in_records=label_array is None)

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        epoch_seed = tf.stack([tf.constant(seed * 7919 + resolution, tf.int64), epoch])
        if label_array is not None:  # official format: labels in record order, one file
            records = tf.data.Dataset.zip(
                tf.data.TFRecordDataset(files[0]), tf.data.Dataset.from_tensor_slices(label_array)
            )
            records = _shard(records, input_context)
        else:
            file_ds = tf.data.Dataset.from_tensor_slices(files)
            if shard_files:
                file_ds = _shard(file_ds, input_context)
            if shuffle:  # the file order of this epoch
                file_ds = (
                    file_ds.batch(len(files)).map(lambda f: _permuted(f, epoch_seed)).unbatch()
                )
            records = file_ds.interleave(
                lambda f: tf.data.TFRecordDataset(f, compression_type=info.compression),
                cycle_length=min(len(files), 16),
                num_parallel_calls=autotune,
                deterministic=True,
            )
            if not shard_files:
                records = _shard(records, input_context)
        if class_repeats and shuffle:
            records = copies.spread(records, epoch_seed, shuffle_buffer, records_per_epoch)
        elif class_repeats:
            records = records.flat_map(copies.repeated)
        elif shuffle:
            records = block_shuffled(records, epoch_seed, shuffle_buffer)
        skip = tf.where(epoch == start.epoch, tf.constant(start.index, tf.int64), 0)
        records = records.enumerate().skip(skip)
        if label_array is not None:
            return records.map(lambda i, r: (tf.stack([epoch, i + 1]), *r))
        return records.map(lambda i, r: (tf.stack([epoch, i + 1]), r, tf.zeros([0])))

    last_epoch = 2**62 if repeat else start.epoch + 1
    records = tf.data.Dataset.range(start.epoch, last_epoch).flat_map(one_epoch)
    records = records.batch(batch_size, drop_remainder=repeat)

    def decode(position, serialized, file_labels):
        images, label_ids = decode_batch(serialized, resolution, info.channels)
        flips = flip_seed(position[0], seed) if mirror else None
        if not as_uint8:
            images, flips = prepare_reals(images, flips), None
        if label_array is not None:
            labels = file_labels
        elif num_labels:
            labels = tf.one_hot(label_ids, num_labels)
        else:
            labels = tf.zeros([tf.shape(images)[0], 0])
        batch = (images, labels, position[-1]) if with_position else (images, labels)
        return batch if flips is None else (*batch, flips)

    # Without tf.data's autotuning thread: a stream torn down at a phase change waits for it to
    # wake from its sleep (up to 60 s). Untuned, the parallel map and the prefetch still feed the
    # step many times over (benchmarks/results/performance_log.md, "The rest of the setup waits").
    options = tf.data.Options()
    options.autotune.enabled = False
    return records.map(decode, num_parallel_calls=autotune).prefetch(autotune).with_options(options)


def _shard(dataset: tf.data.Dataset, context: tf.distribute.InputContext | None) -> tf.data.Dataset:
    if context is None or context.num_input_pipelines == 1:
        return dataset
    return dataset.shard(context.num_input_pipelines, context.input_pipeline_id)


def distribute(
    strategy: tf.distribute.Strategy,
    info: DatasetInfo,
    resolution: int,
    global_batch_size: int,
    **kwargs,
) -> tf.distribute.DistributedDataset | tf.data.Dataset:
    """`make_dataset` for every replica of `strategy`, each with its share of the global batch.

    On one CPU device the dataset itself: TF's distributed stream would add a stream of its own
    on top, whose autotuning thread its teardown waits for
    (benchmarks/results/performance_log.md, "One CPU device without TF's distributed stream")."""
    device = strategy.extended.worker_devices[0]
    if (
        isinstance(strategy, tf.distribute.OneDeviceStrategy)
        and tf.DeviceSpec.from_string(device).device_type == "CPU"
    ):
        with tf.device(device):
            return make_dataset(info, resolution, global_batch_size, **kwargs)

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        per_replica = context.get_per_replica_batch_size(global_batch_size)
        return make_dataset(info, resolution, per_replica, input_context=context, **kwargs)

    return strategy.distribute_datasets_from_function(dataset_fn)


def class_counts(info: DatasetInfo) -> np.ndarray:
    """Images per class (int64 [num_labels]), from the labels file or the lowest level's
    records (their labels only); DatasetError naming the file if a label is out of range."""
    if info.labels_file:
        labels = np.load(info.labels_file, allow_pickle=False)
        return np.bincount(labels.argmax(axis=1), minlength=info.num_labels).astype(np.int64)
    counts = np.zeros(info.num_labels, np.int64)
    for file in info.level_files(min(info.files)):
        records = tf.data.TFRecordDataset(file, compression_type=info.compression).batch(4096)
        try:
            for serialized in records:
                ids = tf.io.parse_example(serialized, {"label": _FEATURES["label"]})[
                    "label"
                ].numpy()
                if ids.size and (ids.min() < 0 or ids.max() >= info.num_labels):
                    raise DatasetError(
                        f"{file}: labels outside 0..{info.num_labels - 1}; re-create the dataset"
                    )
                counts += np.bincount(ids, minlength=info.num_labels)
        except tf.errors.OpError as error:
            raise _corrupt_files_error([(file, _reader_error(error.message))]) from None
    return counts


def class_repeats_for(counts: Sequence[int], balance: float) -> tuple[int, ...]:
    """How many times each image of class c appears in an epoch, round((max n / n_c) ** balance)
    and at least 1, so that classes are drawn about in proportion to n_c ** (1 - balance):
    0 keeps the data's frequencies, 1 draws every class about equally often."""
    counts = np.asarray(counts, np.float64)
    largest = counts.max()
    return tuple(int(max(1, round((largest / n) ** balance))) if n else 1 for n in counts)


def iterate_level(
    info: DatasetInfo, resolution: int, batch_size: int = 256
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every image of a level once, in file order: (uint8 [B, R, R, C], one-hot labels [B, L])."""
    dataset = make_dataset(info, resolution, batch_size, repeat=False, shuffle=False)
    for images, labels in dataset:
        yield to_uint8(images).numpy(), labels.numpy()


def first_of_each_class(info: DatasetInfo, resolution: int, per_class: int) -> np.ndarray:
    """uint8 [num_labels * per_class, R, R, C]: the first `per_class` images of every class in
    class order (a class with fewer images is padded with white tiles); reads only as far as
    it must."""
    found = [[] for _ in range(info.num_labels)]
    for batch, labels in iterate_level(info, resolution):
        for image, label in zip(batch, labels.argmax(axis=1)):
            if len(found[label]) < per_class:
                found[label].append(image)
        if all(len(f) == per_class for f in found):
            break
    white = np.full((resolution, resolution, info.channels), 255, np.uint8)
    return np.stack([image for f in found for image in f + [white] * (per_class - len(f))])


def reals_for_grid(info: DatasetInfo, resolution: int, num: int) -> tuple[np.ndarray, int | None]:
    """(uint8 images, grid columns) for a contact sheet of about `num` reals: the first `num`,
    or of a labelled dataset the first of each class in one row per class (as the sample grids
    of a conditional run, images.class_rows)."""
    classes, columns = class_rows(num, info.num_labels)
    if classes is None:
        return next(iterate_level(info, resolution, batch_size=num))[0], None
    return first_of_each_class(info, resolution, columns), columns


def find_corrupt_files(files: list[str], compression: str = "") -> list[tuple[str, str]]:
    """(file, error) for every file that does not read to its end as TFRecords."""
    bad = []
    for file in files:
        try:
            for _ in tf.data.TFRecordDataset(file, compression_type=compression):
                pass
        except tf.errors.OpError as error:
            bad.append((file, _reader_error(error.message)))
    return bad


def _reader_error(message: str) -> str:
    """TensorFlow's reader error without its op decorations: 'truncated record at 131934'."""
    found = re.search(r"(truncated|corrupted) record at \d+", message)
    if found:
        return found.group(0)
    message = re.sub(r"\{\{[^}]*\}\}|\[Op:[^\]]*\].*", "", message.splitlines()[0])
    return message.strip(" :'") or "unreadable"


def check_readable(info: DatasetInfo, resolution: int) -> None:
    """Raises DatasetError naming the corrupt or truncated files of a level, if any."""
    bad = find_corrupt_files(info.level_files(resolution), info.compression)
    if bad:
        raise _corrupt_files_error(bad)


def require_records(info: DatasetInfo, resolution: int) -> None:
    """DatasetError naming the level's files if they hold no record at all (a stream over them
    would never yield a batch)."""
    files = info.level_files(resolution)
    for file in files:
        try:
            if (
                next(iter(tf.data.TFRecordDataset(file, compression_type=info.compression)), None)
                is not None
            ):
                return
        except tf.errors.OpError:
            return  # a damaged file: check_readable names it when the stream reaches the damage
    raise DatasetError(
        f"{info.path}: level {resolution}x{resolution} holds no image ({', '.join(files)} "
        "empty); re-create the dataset"
    )


def check_record_shapes(info: DatasetInfo, resolution: int) -> None:
    """DatasetError naming the first file and record of a level whose image is not [C, R, R]
    with C x R x R bytes (a record can be intact and still wrong)."""
    expected = [info.channels, resolution, resolution]
    for file in info.level_files(resolution):
        for index, record in enumerate(
            tf.data.TFRecordDataset(file, compression_type=info.compression)
        ):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            shape = list(feature["shape"].int64_list.value) if "shape" in feature else None
            size = (
                len(feature["data"].bytes_list.value[0])
                if "data" in feature and feature["data"].bytes_list.value
                else 0
            )
            if shape != expected or size != int(np.prod(expected)):
                raise DatasetError(
                    f"{file}: record {index} holds an image of shape {shape} ({size} bytes) where "
                    "level "
                    f"{resolution}x{resolution} needs {expected}; re-create the dataset"
                )


def _corrupt_files_error(bad: list[tuple[str, str]]) -> DatasetError:
    listing = "; ".join(f"{f}: {e}" for f, e in bad)
    return DatasetError(f"corrupt or truncated TFRecord files ({listing}); re-create the dataset")
