"""Global pooling layers: HWC -> C, the classifier head of ResNet, DS-CNN and MobileNet."""

from __future__ import annotations

from edgecnn.errors import ShapeError
from edgecnn.model.layers import Layer


class _GlobalPool2D(Layer):
    def _infer(self, shape):
        if len(shape) != 3:
            raise ShapeError(f"{self.name}: global pooling needs an HWC input, got shape {shape}")
        return (shape[2],)

    def connections(self):
        h, w, c = self.input_shape
        return h * w * c


class GlobalAvgPool2D(_GlobalPool2D):
    """Mean over height and width (TFLite's MEAN over axes 1, 2); the output is flat (C,)."""

    kind = "global_avgpool2d"

    def _forward(self, x):
        from edgecnn.reference.global_pool import global_avg_pool2d_forward

        return global_avg_pool2d_forward(x)

    def _backward(self, dy):
        from edgecnn.reference.global_pool import global_avg_pool2d_backward

        return global_avg_pool2d_backward(dy, self._cache)


class GlobalMaxPool2D(_GlobalPool2D):
    """Max over height and width (TFLite's REDUCE_MAX over axes 1, 2); the output is flat (C,)."""

    kind = "global_maxpool2d"

    def _forward(self, x):
        from edgecnn.reference.global_pool import global_max_pool2d_forward

        return global_max_pool2d_forward(x)

    def _backward(self, dy):
        from edgecnn.reference.global_pool import global_max_pool2d_backward

        return global_max_pool2d_backward(dy, self._cache)
