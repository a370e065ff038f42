"""Make the foreign-exporter test models in tests/fixtures/foreign/ (committed; CI does not
need TensorFlow or Paddle). Each part runs in an environment that has that framework:

    python scripts/make_foreign_models.py keras    # needs tensorflow + tf2onnx
    python scripts/make_foreign_models.py paddle   # needs paddlepaddle + paddle2onnx

The networks have random weights (seeded): they test that models written by exporters nobody
on this project wrote convert and run, not accuracy.
"""

from __future__ import annotations

import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "foreign"


def keras() -> None:
    import numpy as np
    import tensorflow as tf
    import tf2onnx

    tf.random.set_seed(0)
    inp = tf.keras.Input((12, 12, 3), name="image")  # NHWC, as Keras writes images
    x = tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = tf.keras.layers.MaxPooling2D(2)(x)
    x = tf.keras.layers.Conv2D(8, 3, padding="same")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.ReLU(max_value=6.0)(x)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(16, activation="relu")(x)
    out = tf.keras.layers.Dense(5, name="scores")(x)
    model = tf.keras.Model(inp, out)
    model(np.zeros((1, 12, 12, 3), np.float32))
    spec = (tf.TensorSpec((None, 12, 12, 3), tf.float32, name="image"),)
    onnx_model, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=13)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "keras_cnn_tf2onnx.onnx").write_bytes(onnx_model.SerializeToString())
    print("wrote", OUT / "keras_cnn_tf2onnx.onnx", "tf", tf.__version__, "tf2onnx", tf2onnx.__version__)


def paddle() -> None:
    import paddle
    import paddle2onnx  # noqa: F401  (paddle.onnx.export uses it)

    paddle.seed(0)

    class Net(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.c1 = paddle.nn.Conv2D(3, 8, 3, padding=1)
            self.bn = paddle.nn.BatchNorm2D(8)
            self.c2 = paddle.nn.Conv2D(8, 8, 3, padding=1)
            self.pool = paddle.nn.AdaptiveAvgPool2D(1)
            self.fc = paddle.nn.Linear(8, 5)

        def forward(self, x):
            x = paddle.nn.functional.relu(self.bn(self.c1(x)))
            x = paddle.nn.functional.hardswish(self.c2(x))
            x = self.pool(x).flatten(1)
            return self.fc(x)

    net = Net()
    net.eval()
    spec = [paddle.static.InputSpec(shape=[None, 3, 12, 12], dtype="float32", name="x")]
    OUT.mkdir(parents=True, exist_ok=True)
    for opset in (11, 13):
        prefix = str(OUT / f"paddle_cnn_opset{opset}")
        paddle.onnx.export(net, prefix, input_spec=spec, opset_version=opset)
        print("wrote", prefix + ".onnx", "paddle", paddle.__version__)


if __name__ == "__main__":
    {"keras": keras, "paddle": paddle}[sys.argv[1]]()
