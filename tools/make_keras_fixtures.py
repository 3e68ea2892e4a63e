"""Write the Keras fixtures of tests/nn/test_keras_import.py (needs TensorFlow; not part of the project).

Run once with a Keras 2 TensorFlow (2.15, for `.h5` files like the articles' `cnn.h5`) and
once with a Keras 3 TensorFlow (for `.keras` files), each in a throw-away venv:

    python3 -m venv /tmp/tf215 && /tmp/tf215/bin/pip install tensorflow-cpu==2.15.1
    python3 -m venv /tmp/tf3 && /tmp/tf3/bin/pip install tensorflow-cpu
    /tmp/tf215/bin/python tools/make_keras_fixtures.py --mnist ~/.cache/cnnscope/mnist.npz
    /tmp/tf3/bin/python tools/make_keras_fixtures.py --mnist ~/.cache/cnnscope/mnist.npz

For every model that cnnscope should import it writes `<name>.h5` or `<name>.keras` and
`<name>.npz` with Keras's own numbers: `inputs` (N x H x W x C, what Keras was fed),
`raw` (the same images before the input standardisation, in [0, 1]), `norm_mode`,
`norm_mean`, `norm_std` (the standardisation between `raw` and `inputs`), `layers`
(Keras layer names in order), `act_<layer>` (each layer's output, channels last) and
`predictions` (model.predict). Models cnnscope must refuse get only the model file.

`--only per-pixel` (Keras 2) writes just `articles_perpixel_k2.h5/.npz`: the articles' network
trained on images scaled by their per-pixel StandardScaler, fitted as their `load_Mnist` does
on all 70000 MNIST images on the 0..255 scale.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras as keras_package  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

keras = tf.keras
layers = keras.layers
KERAS_VERSION = keras_package.__version__
KERAS_MAJOR = int(KERAS_VERSION.split(".")[0])
TAG = f"k{KERAS_MAJOR}"


def articles_net(input_shape=(28, 28, 1)) -> keras.Model:
    """The seed articles' build_cnn_simple with their default lists (208,982 parameters)."""
    cnn = keras.Sequential(name="articles")
    cnn.add(layers.Input(shape=input_shape))
    cnn.add(layers.Conv2D(32, (3, 3), activation="relu", name="Conv2D_1"))
    cnn.add(layers.MaxPooling2D((2, 2), name="Max_Pool_1"))
    cnn.add(layers.Conv2D(64, (3, 3), activation="relu", name="Conv2D_2"))
    cnn.add(layers.MaxPooling2D((2, 2), name="Max_Pool_2"))
    cnn.add(layers.Conv2D(128, (3, 3), activation="relu", name="Conv2D_3"))
    cnn.add(layers.Flatten())
    cnn.add(layers.Dense(100, activation="relu"))
    cnn.add(layers.Dense(10, activation="softmax"))
    return cnn


def variety_net() -> keras.Model:
    """Small, 3 input channels, odd size: same/valid, even and non-square kernels, every activation."""
    return keras.Sequential([
        layers.Input(shape=(17, 17, 3)),
        layers.Conv2D(6, (4, 4), padding="same", activation="sigmoid", name="c_same_sigmoid"),
        layers.Conv2D(5, (5, 3), activation="elu", name="c_elu_5x3"),
        layers.MaxPooling2D((3, 3), name="pool_3"),
        layers.Dropout(0.3, name="drop_1"),
        layers.Conv2D(7, (1, 1), activation="tanh", use_bias=False, name="c_tanh_nobias"),
        layers.Conv2D(4, (2, 2), padding="same", activation="linear", name="c_linear_same"),
        layers.MaxPooling2D((2, 2), padding="same", name="pool_same"),
        layers.Flatten(name="flat"),
        layers.Dense(9, activation="tanh", name="d_tanh"),
        layers.Dropout(0.5, name="drop_2"),
        layers.Dense(8, activation="linear", name="d_linear"),
        layers.Dense(7, activation="relu", name="d_relu"),
        layers.Dense(5, activation="sigmoid", name="d_sigmoid_out"),
    ], name="variety")


def functional_net() -> keras.Model:
    inputs = keras.Input(shape=(12, 12, 1))
    a = layers.Conv2D(4, 3, padding="same", activation="relu", name="branch_a")(inputs)
    b = layers.Conv2D(4, 1, activation="relu", name="branch_b")(inputs)
    x = layers.Add(name="add")([a, b])
    x = layers.Flatten()(x)
    outputs = layers.Dense(3, activation="softmax", name="out")(x)
    return keras.Model(inputs, outputs, name="functional")


def batchnorm_net() -> keras.Model:
    return keras.Sequential([
        layers.Input(shape=(12, 12, 1)),
        layers.Conv2D(4, 3, activation="relu", name="Conv2D_1"),
        layers.BatchNormalization(name="bn_1"),
        layers.Flatten(),
        layers.Dense(3, activation="softmax", name="out"),
    ], name="batchnorm")


def strided_net() -> keras.Model:
    return keras.Sequential([
        layers.Input(shape=(12, 12, 1)),
        layers.Conv2D(4, 3, strides=2, activation="relu", name="Conv2D_strided"),
        layers.Flatten(),
        layers.Dense(3, activation="softmax", name="out"),
    ], name="strided")


def dilated_net() -> keras.Model:
    return keras.Sequential([
        layers.Input(shape=(12, 12, 1)),
        layers.Conv2D(4, 3, dilation_rate=2, activation="relu", name="Conv2D_dilated"),
        layers.Flatten(),
        layers.Dense(3, activation="softmax", name="out"),
    ], name="dilated")


def pool_stride_net() -> keras.Model:
    return keras.Sequential([
        layers.Input(shape=(12, 12, 1)),
        layers.Conv2D(4, 3, activation="relu", name="Conv2D_1"),
        layers.MaxPooling2D(pool_size=2, strides=1, name="pool_overlapping"),
        layers.Flatten(),
        layers.Dense(3, activation="softmax", name="out"),
    ], name="pool_stride")


def fit_briefly(model: keras.Model, x: np.ndarray, y: np.ndarray, epochs: int = 1) -> None:
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.001),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0, shuffle=True)


def uncompiled_copy(model: keras.Model, build) -> keras.Model:
    """The same weights in a fresh model without optimizer state (keeps the file small)."""
    copy = build()
    copy.set_weights(model.get_weights())
    return copy


def standardize(raw: np.ndarray, mode: str, mean: float, std: float) -> np.ndarray:
    if mode == "global":
        return ((raw - mean) / std).astype(np.float32)
    if mode == "per_image":
        return tf.image.per_image_standardization(raw).numpy().astype(np.float32)
    return raw.astype(np.float32)


def keras_outputs(model: keras.Model, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's output for `inputs` (inference mode), plus model.predict."""
    probe = keras.Model(model.inputs, [layer.output for layer in model.layers])
    outputs = probe.predict(inputs, verbose=0)
    result = {f"act_{layer.name}": np.asarray(out, dtype=np.float32) for layer, out in zip(model.layers, outputs, strict=False)}
    result["predictions"] = np.asarray(model.predict(inputs, verbose=0), dtype=np.float32)
    result["layers"] = np.array([layer.name for layer in model.layers])
    return result


def save_model(model: keras.Model, path: Path) -> None:
    if path.suffix == ".h5" and KERAS_MAJOR >= 3:
        model.save(path)  # Keras 3 writes the legacy HDF5 format for .h5
    elif path.suffix == ".h5":
        model.save(path, save_format="h5")
    else:
        model.save(path)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


def save_expected(path: Path, model: keras.Model, raw: np.ndarray, mode: str, mean: float, std: float) -> None:
    inputs = standardize(raw, mode, mean, std)
    np.savez_compressed(path, raw=raw.astype(np.float32), inputs=inputs, norm_mode=np.array(mode),
                        norm_mean=np.float64(mean), norm_std=np.float64(std),
                        keras_version=np.array(KERAS_VERSION), **keras_outputs(model, inputs))
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


def articles_pixel_scaler(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's StandardScaler on flattened uint8 images: mean, population std (1 where 0)."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    mean, scale = flat.mean(axis=0), flat.std(axis=0)
    scale[scale == 0] = 1.0
    return mean, scale


def per_pixel_fixture(out: Path, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> None:
    """The articles' network trained on their per-pixel scaled images, and Keras's numbers for 8 test images."""
    mean, scale = articles_pixel_scaler(np.concatenate([train_x, test_x]))

    def scaled(images: np.ndarray) -> np.ndarray:
        flat = (images.reshape(len(images), -1).astype(np.float64) - mean) / scale
        return flat.reshape(len(images), 28, 28, 1).astype(np.float32)

    net = articles_net()
    fit_briefly(net, scaled(train_x[:6000]), train_y[:6000])
    net = uncompiled_copy(net, articles_net)
    save_model(net, out / "articles_perpixel_k2.h5")
    inputs = scaled(test_x[:8])
    path = out / "articles_perpixel_k2.npz"
    np.savez_compressed(path, raw=(test_x[:8, :, :, None] / 255.0).astype(np.float32), inputs=inputs,
                        norm_mode=np.array("per_pixel"), keras_version=np.array(KERAS_VERSION),
                        **keras_outputs(net, inputs))
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", required=True, help="MNIST npz with train_x/train_y/test_x (uint8) or Keras x_train/...")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "keras"))
    parser.add_argument("--only", choices=["per-pixel"], default=None, help="write only the per-pixel fixture")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(7 + KERAS_MAJOR)

    data = np.load(args.mnist)
    train_x = data["train_x"] if "train_x" in data.files else data["x_train"]
    train_y = data["train_y"] if "train_y" in data.files else data["y_train"]
    test_x = data["test_x"] if "test_x" in data.files else data["x_test"]
    if args.only == "per-pixel":
        per_pixel_fixture(out, train_x, train_y, test_x)
        return
    train_raw = (train_x[:6000, :, :, None] / 255.0).astype(np.float32)
    test_raw = (test_x[:4, :, :, None] / 255.0).astype(np.float32)

    # The articles' network, briefly trained on 6000 real images. Keras 2 saw globally
    # standardised images, Keras 3 per-image standardised ones.
    if KERAS_MAJOR == 2:
        mode, mean, std = "global", float(train_raw.mean()), float(train_raw.std())
    else:
        mode, mean, std = "per_image", 0.0, 1.0
    net = articles_net()
    fit_briefly(net, standardize(train_raw, mode, mean, std), train_y[:6000])
    net = uncompiled_copy(net, articles_net)
    name = f"articles_{TAG}"
    save_model(net, out / (name + (".h5" if KERAS_MAJOR == 2 else ".keras")))
    save_expected(out / f"{name}.npz", net, test_raw, mode, mean, std)

    # The variety network in both formats, with optimizer state in the files (as after fit).
    rng = np.random.default_rng(KERAS_MAJOR)
    net = variety_net()
    fit_briefly(net, rng.uniform(size=(64, 17, 17, 3)).astype(np.float32), rng.integers(0, 5, 64))
    raw = rng.uniform(size=(4, 17, 17, 3)).astype(np.float32)
    for suffix in (".h5", ".keras"):
        name = f"variety_{TAG}"
        save_model(net, out / f"{name}{suffix}")
    save_expected(out / f"variety_{TAG}.npz", net, raw, "none", 0.0, 1.0)

    # Models cnnscope must refuse, and a weights-only file as the articles' save_weights writes.
    unsupported = {"functional": functional_net, "batchnorm": batchnorm_net, "strided": strided_net,
                   "dilated": dilated_net, "pool_stride": pool_stride_net}
    suffix = ".h5" if KERAS_MAJOR == 2 else ".keras"
    for name, build in unsupported.items():
        save_model(build(), out / f"{name}_{TAG}{suffix}")
    if KERAS_MAJOR == 2:
        weights = out / "weights_only_k2.h5"
        strided_net().save_weights(weights)
        print(f"wrote {weights} ({weights.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
