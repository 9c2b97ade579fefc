"""The input pipeline: round trips, the official format, errors naming files, fade of reals."""

import dataclasses
import math
import re

import numpy as np
import pytest
import tensorflow as tf

from progan_tf import data, dataset_io


@pytest.fixture
def small_dataset(tmp_path, rng):
    images = rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, 12)
    dataset_io.write_arrays(tmp_path / "ds", images, labels, name="small", num_labels=3)
    return data.load_info(tmp_path / "ds"), images, labels


def _by_bytes(images):
    return sorted(np.asarray(i).tobytes() for i in images)


def test_shuffle_blocks_hold_as_many_records_as_fit_in_the_budget(small_dataset):
    info = small_dataset[0]  # RGB
    for resolution, megabytes in [(1024, 1024), (256, 1024), (4, 1024), (1024, 1)]:
        expected = math.ceil(megabytes * 2**20 / (resolution * resolution * 3))
        assert data.shuffle_records(info, resolution, 0, megabytes) == expected
    assert data.shuffle_records(info, 1024, 0, 1024) == 342  # 3 MB images: few at 1024x1024
    assert data.shuffle_records(info, 8, 64, 1024) == 64  # a count given wins
    gray = dataclasses.replace(info, channels=1)
    assert data.shuffle_records(gray, 1024, 0, 1024) == 1024


def test_round_trip_images_to_pipeline_values(small_dataset):
    info, images, labels = small_dataset
    batches = list(data.make_dataset(info, 8, 4, repeat=False, shuffle=False))
    got = np.concatenate([b[0].numpy() for b in batches])
    assert got.dtype == np.float32 and got.min() >= -1 and got.max() <= 1
    expected = images.astype(np.float32) / 127.5 - 1
    assert _by_bytes(got) == _by_bytes(expected)
    for image, onehot in zip(got, np.concatenate([b[1].numpy() for b in batches])):
        source = np.flatnonzero((expected == image).all(axis=(1, 2, 3)))[0]
        assert onehot.argmax() == labels[source] and onehot.sum() == 1


def test_lower_levels_are_box_filtered(small_dataset):
    info, images, _ = small_dataset
    low = np.concatenate([b for b, _ in data.iterate_level(info, 4)])
    want = np.rint(images.astype(float).reshape(12, 4, 2, 4, 2, 3).mean(axis=(2, 4))).astype(
        np.uint8
    )
    assert _by_bytes(low) == _by_bytes(want)


def test_pipeline_repeats_shuffles_and_mirrors(small_dataset):
    # Catches a pipeline that does not shuffle (file order), does not mirror, mirrors every
    # image, or loses/duplicates images within an epoch.
    info, _, _ = small_dataset
    dataset = data.make_dataset(info, 8, 6, mirror=True, seed=1)
    images, labels = next(iter(dataset))
    assert images.shape == (6, 8, 8, 3) and labels.shape == (6, 3)
    assert len(list(dataset.take(7))) == 7  # 42 images from 12: repeats
    in_order = np.concatenate(
        [b[0].numpy() for b in data.make_dataset(info, 8, 12, repeat=False, shuffle=False)]
    )
    epoch = np.concatenate([b[0].numpy() for b in dataset.take(2)])  # the first 12 = epoch 0
    flipped = [
        next(
            i
            for i, x in enumerate(in_order)
            if np.array_equal(x, y) or np.array_equal(x[:, ::-1], y)
        )
        for y in epoch
    ]
    assert sorted(flipped) == list(range(12))  # every image once per epoch, mirrored or not
    assert flipped != list(range(12))  # shuffled
    mirrored = [not np.array_equal(in_order[i], y) for i, y in zip(flipped, epoch)]
    assert 0 < sum(mirrored) < 12


def test_random_mirror_flips_about_half(rng):
    x = tf.constant(rng.normal(size=(400, 2, 2, 1)).astype("float32"))
    y = data.random_mirror(x, seed=3).numpy()
    flipped = np.all(y == x.numpy()[:, :, ::-1], axis=(1, 2, 3))
    kept = np.all(y == x.numpy(), axis=(1, 2, 3))
    assert (flipped | kept).all() and 150 < flipped.sum() < 250


def test_distribute_gives_each_replica_its_share(small_dataset):
    info, _, _ = small_dataset
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    batch = next(iter(data.distribute(strategy, info, 8, 6)))
    shapes = [t.shape for t in strategy.experimental_local_results(batch[0])]
    assert shapes == [(3, 8, 8, 3), (3, 8, 8, 3)]


def test_one_cpu_device_streams_the_dataset_itself_in_the_same_order(small_dataset):
    """On one CPU device `distribute` hands back the plain dataset (no stream of TF's on top,
    whose teardown waited for its autotuning thread): catches a return of the wrapper, and
    a plain stream whose batches differ from the distributed one's."""
    info, _, _ = small_dataset
    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    plain = data.distribute(one, info, 8, 4, seed=5, mirror=True)
    assert isinstance(plain, tf.data.Dataset)
    two = tf.distribute.MirroredStrategy(["/cpu:0"])  # one replica through TF's distributed stream
    wrapped = iter(data.distribute(two, info, 8, 4, seed=5, mirror=True))
    for batch in plain.take(3):
        other = next(wrapped)
        np.testing.assert_array_equal(
            batch[0].numpy(), two.experimental_local_results(other[0])[0].numpy()
        )


def test_official_format_is_read(tmp_path, rng):
    images = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    labels = np.eye(4, dtype=np.float32)[[0, 3, 2, 1, 3]]
    for stage, level in (
        (3, images),
        (2, images.reshape(5, 4, 2, 4, 2, 3).mean(axis=(2, 4)).round().astype(np.uint8)),
    ):
        with tf.io.TFRecordWriter(str(tmp_path / f"faces-r{stage:02d}.tfrecords")) as writer:
            for image in level:
                chw = image.transpose(2, 0, 1)
                example = tf.train.Example(
                    features=tf.train.Features(
                        feature={
                            "shape": tf.train.Feature(
                                int64_list=tf.train.Int64List(value=chw.shape)
                            ),
                            "data": tf.train.Feature(
                                bytes_list=tf.train.BytesList(value=[chw.tobytes()])
                            ),
                        }
                    )
                )
                writer.write(example.SerializeToString())
    np.save(tmp_path / "faces-rxx.labels", labels)
    (tmp_path / "faces-rxx.labels.npy").rename(tmp_path / "faces-rxx.labels")
    info = data.load_info(tmp_path)
    assert (info.name, info.resolution, info.channels, info.num_labels) == ("faces", 8, 3, 4)
    got, got_labels = next(data.iterate_level(info, 8, batch_size=5))
    np.testing.assert_array_equal(got, images)  # record order, labels still aligned
    np.testing.assert_array_equal(got_labels, labels)


def test_truncated_records_name_the_file(small_dataset):
    info, _, _ = small_dataset
    file = info.level_files(8)[0]
    with open(file, "r+b") as f:
        f.truncate(len(open(file, "rb").read()) - 100)
    with pytest.raises(data.DatasetError, match=file):
        data.check_readable(info, 8)
    data.check_readable(info, 4)
    with pytest.raises(tf.errors.DataLossError):
        list(data.make_dataset(info, 8, 4, repeat=False))


def test_missing_level_and_too_high_resolution_are_clear_errors(small_dataset, tmp_path):
    info, _, _ = small_dataset
    with pytest.raises(data.DatasetError, match="up to 8x8"):
        info.level_files(16)
    import os

    os.remove(info.level_files(4)[0])
    with pytest.raises(data.DatasetError, match="missing"):
        info.level_files(4)
    with pytest.raises(data.DatasetError, match="does not exist"):
        data.load_info(tmp_path / "nope")


def _np_fade(x, alpha):
    n, h, w, c = x.shape
    blurred = x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
    up = blurred.repeat(2, axis=1).repeat(2, axis=2)
    return x + (up - x) * (1 - alpha)


@pytest.mark.parametrize("alpha", [0.0, 0.4, 1.0])
def test_fade_reals_eager_and_in_tf_data_match_numpy(rng, alpha):
    x = rng.normal(size=(3, 8, 8, 2)).astype("float32")
    want = _np_fade(x, alpha)
    np.testing.assert_allclose(
        data.fade_reals(tf.constant(x), alpha).numpy(), want, rtol=1e-5, atol=1e-6
    )
    in_pipeline = next(
        iter(tf.data.Dataset.from_tensors(x).map(lambda t: data.fade_reals(t, alpha)))
    )
    np.testing.assert_allclose(in_pipeline.numpy(), want, rtol=1e-5, atol=1e-6)
    if alpha == 1.0:
        np.testing.assert_array_equal(data.fade_reals(tf.constant(x), alpha).numpy(), x)


@pytest.mark.parametrize("shuffle_buffer", [4, 64])
def test_stream_restarted_at_a_saved_position_continues_exactly(small_dataset, shuffle_buffer):
    # Catches a resume that reshuffles: order, mirror flips and epochs must continue as if the
    # stream had never stopped (12 images, batches of 5: batch 3 crosses into epoch 1).
    info, _, _ = small_dataset
    kwargs = dict(mirror=True, seed=5, shuffle_buffer=shuffle_buffer, with_position=True)
    whole = list(data.make_dataset(info, 8, 5, **kwargs).take(7))
    for cut in (2, 3, 5):
        epoch, index = (int(v) for v in whole[cut - 1][2].numpy())
        restarted = list(
            data.make_dataset(info, 8, 5, start=data.StreamPosition(epoch, index), **kwargs).take(
                7 - cut
            )
        )
        for a, b in zip(whole[cut:], restarted):
            np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
            np.testing.assert_array_equal(a[2].numpy(), b[2].numpy())
    assert [int(b[2][0]) for b in whole] == [0, 0, 1, 1, 2, 2, 2]  # epochs: 12 records each
    first_epoch = np.concatenate([b[0].numpy() for b in whole])[:12]
    other_seed = data.make_dataset(info, 8, 12, seed=6, shuffle_buffer=shuffle_buffer)
    assert not np.array_equal(first_epoch, next(iter(other_seed))[0].numpy())  # the seed matters


def test_first_of_each_class_against_a_numpy_selection(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (30, 4, 4, 3), dtype=np.uint8)
    labels = np.array([0, 1] * 14 + [2, 0])  # class 2 has one image, at the end
    # class 3: none
    dataset_io.write_arrays(tmp_path / "ds", images, labels, name="uneven", num_labels=4)
    info = data.load_info(tmp_path / "ds")
    got = data.first_of_each_class(info, 4, per_class=3)
    # the level's own (stored) order
    images, labels = next(data.iterate_level(info, 4, batch_size=30))
    labels = labels.argmax(axis=1)
    white = np.full((4, 4, 3), 255, np.uint8)
    expected = [images[np.flatnonzero(labels == c)[:3]] for c in range(4)]
    expected = np.concatenate(
        [np.concatenate([e, [white] * (3 - len(e))]) if len(e) < 3 else e for e in expected]
    )
    np.testing.assert_array_equal(got, expected)


def test_class_balance_repeats_each_image_of_a_class_and_resumes_exactly(tmp_path):
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (23, 4, 4, 3), dtype=np.uint8)
    labels = np.array([0] * 16 + [1] * 4 + [2] * 3)
    # class 3: none
    dataset_io.write_arrays(tmp_path / "ds", images, labels, name="rare", num_labels=4)
    info = data.load_info(tmp_path / "ds")
    counts = data.class_counts(info)
    np.testing.assert_array_equal(counts, np.bincount(labels, minlength=4))
    assert data.class_repeats_for(counts, 0.0) == (1, 1, 1, 1)
    assert data.class_repeats_for(counts, 1.0) == (1, 4, 5, 1)  # 16/4, round(16/3); no images: 1
    assert data.class_repeats_for(counts, 0.5) == (1, 2, 2, 1)  # sqrt(4), round(sqrt(5.33))

    # One epoch, file order: every image exactly its class's repeat count, labels kept.
    repeats = (1, 4, 5, 1)
    got, got_labels = next(
        iter(data.make_dataset(info, 4, 100, class_repeats=repeats, repeat=False, shuffle=False))
    )
    expected = [image for image, label in zip(images, labels) for _ in range(repeats[label])]
    assert _by_bytes(data.to_uint8(got).numpy()) == _by_bytes(expected)
    np.testing.assert_array_equal(
        np.bincount(got_labels.numpy().argmax(1), minlength=4), [16, 16, 15, 0]
    )

    # Shuffled and mirrored, the epoch is longer and a restart at a saved position continues.
    kwargs = dict(mirror=True, seed=2, shuffle_buffer=8, with_position=True, class_repeats=repeats)
    whole = list(data.make_dataset(info, 4, 7, **kwargs).take(9))
    assert [int(b[2][0]) for b in whole] == [0] * 6 + [1] * 3  # 47 records an epoch
    epoch, index = (int(v) for v in whole[3][2].numpy())
    restarted = list(
        data.make_dataset(info, 4, 7, start=data.StreamPosition(epoch, index), **kwargs).take(5)
    )
    for a, b in zip(whole[4:], restarted):
        np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())


def test_class_balance_spreads_the_copies_of_an_image_over_the_whole_epoch(tmp_path):
    # 380 common images and 20 rare ones (19 copies each, balance 1): an epoch of 760 records,
    # a shuffle buffer much smaller than it. Copies bunched in a row and shuffled only within a
    # buffer would put several copies of an image in one batch (and minibatch-stddev group).
    rng = np.random.default_rng(6)
    images = rng.integers(0, 256, (400, 4, 4, 3), dtype=np.uint8)
    labels = np.array([0] * 380 + [1] * 20)
    dataset_io.write_arrays(tmp_path / "ds", images, labels, name="rare", num_labels=2)
    info = data.load_info(tmp_path / "ds")
    repeats = data.class_repeats_for(data.class_counts(info), 1.0)
    assert repeats == (1, 19)
    for seed in (0, 1):
        batches = [
            data.to_uint8(b[0]).numpy()
            for b in data.make_dataset(
                info, 4, 16, class_repeats=repeats, shuffle_buffer=64, seed=seed, repeat=False
            )
        ]
        keys = [image.tobytes() for batch in batches for image in batch]
        assert len(keys) == 760
        for batch in batches:  # no image twice in one batch
            assert len({image.tobytes() for image in batch}) == len(batch)
        positions = {}
        for position, key in enumerate(keys):
            positions.setdefault(key, []).append(position)
        assert sorted(len(p) for p in positions.values()) == [1] * 380 + [19] * 20
        for image in images[380:]:  # each rare image's copies cover the epoch, about evenly
            where = positions[image.tobytes()]
            assert where[0] < 0.1 * 760 and where[-1] > 0.9 * 760
            assert np.diff(where).min() >= 16  # 1/19 of the epoch apart: at least 20 here


def test_class_balance_of_an_epoch_that_fits_the_buffer_reads_it_once_in_the_same_order(tmp_path):
    # An epoch whose 400 records fit the shuffle buffer is spread from one read (whole_epoch);
    # the same dataset made to look too big for the buffer takes the segment-by-segment path,
    # whose blocks then hold whole segments and so give exactly the places' order too.
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (400, 4, 4, 3), dtype=np.uint8)
    labels = np.array([0] * 380 + [1] * 20)
    dataset_io.write_arrays(tmp_path / "ds", images, labels, name="rare", num_labels=2)
    info = data.load_info(tmp_path / "ds")
    kwargs = dict(class_repeats=(1, 19), shuffle_buffer=1000, seed=3, repeat=False)

    def epoch(info):
        return np.concatenate([b[0].numpy() for b in data.make_dataset(info, 4, 16, **kwargs)])

    once = epoch(info)
    assert once.shape[0] == 760
    np.testing.assert_array_equal(once, epoch(dataclasses.replace(info, num_images=10**6)))
    keys = [image.tobytes() for image in data.to_uint8(once).numpy()]
    for image in images[380:]:  # each rare image's copies spread over the epoch, as before
        where = [i for i, key in enumerate(keys) if key == image.tobytes()]
        assert len(where) == 19 and np.diff(where).min() >= 16


def test_class_counts_of_the_official_format_come_from_its_labels_file(tmp_path):
    labels = np.eye(3, dtype=np.float32)[[2, 2, 0, 2]]
    with tf.io.TFRecordWriter(str(tmp_path / "x-r02.tfrecords")) as writer:
        for _ in labels:
            example = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        "shape": tf.train.Feature(int64_list=tf.train.Int64List(value=[3, 4, 4])),
                        "data": tf.train.Feature(bytes_list=tf.train.BytesList(value=[bytes(48)])),
                    }
                )
            )
            writer.write(example.SerializeToString())
    np.save(tmp_path / "x-rxx.npy", labels)
    (tmp_path / "x-rxx.npy").rename(tmp_path / "x-rxx.labels")
    info = data.load_info(tmp_path)
    np.testing.assert_array_equal(data.class_counts(info), [1, 0, 3])
    got = next(
        iter(data.make_dataset(info, 4, 100, class_repeats=(3, 1, 1), repeat=False, shuffle=False))
    )[1]
    np.testing.assert_array_equal(got.numpy().argmax(1), [2, 2, 0, 0, 0, 2])
    shuffled = next(iter(data.make_dataset(info, 4, 100, class_repeats=(3, 1, 1), repeat=False)))
    np.testing.assert_array_equal(np.sort(shuffled[1].numpy().argmax(1)), [0, 0, 0, 2, 2, 2])


def test_class_counts_name_the_file_whose_labels_are_out_of_range(small_dataset):
    import dataclasses  # noqa: PLC0415

    info, _, labels = small_dataset  # labels 0..2
    # a dataset.json claiming fewer classes
    fewer = dataclasses.replace(info, num_labels=int(labels.max()))
    with pytest.raises(
        data.DatasetError,
        match=rf"{re.escape(info.files[4][0])}: labels outside 0..{labels.max() - 1}",
    ):
        data.class_counts(fewer)


def test_class_copies_count_each_record_by_its_class_alone():
    import tensorflow as tf  # noqa: PLC0415

    def example(label):
        feature = {"label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}
        return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()

    copies = data.ClassCopies((1, 4, 2))
    batch = tf.constant([example(0), example(1), example(2), example(1)])
    assert copies.copies_of(batch).numpy().tolist() == [1, 4, 2, 4]
    # the official format: (serialized, one-hot label) pairs
    official = data.ClassCopies((1, 4, 2), labels_in_records=False)
    onehot = tf.one_hot([2, 0], 3)
    assert official.copies_of((tf.constant([b"", b""]), onehot)).numpy().tolist() == [2, 1]
    repeated = list(copies.repeated(tf.constant(example(1))).as_numpy_iterator())
    assert len(repeated) == 4
