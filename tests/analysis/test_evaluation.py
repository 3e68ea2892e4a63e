"""analysis.evaluation: the numbers agree with a direct computation; one batched prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnscope.analysis.evaluation import evaluate, predict_images, predict_probabilities
from cnnscope.app.commands.evaluate import format_report
from cnnscope.data.images import dataset_images
from cnnscope.data.mnist import to_tensor
from cnnscope.errors import UserError


def test_accuracy_confusion_and_per_class_agree_with_a_direct_count(small_model, mnist):
    images, labels = mnist.test_x[:3000], mnist.test_y[:3000]
    result = evaluate(small_model, images, labels, batch_size=700)
    with torch.no_grad():
        direct = small_model(to_tensor(images)).argmax(1).numpy()
    assert result.accuracy == (direct == labels).mean()
    assert result.accuracy > 0.9
    matrix = result.confusion()
    assert matrix.sum() == 3000 and np.trace(matrix) == (direct == labels).sum()
    assert matrix.sum(axis=1).tolist() == np.bincount(labels, minlength=10).tolist()
    for k in range(10):
        mine = labels == k
        assert result.per_class_accuracy()[k] == (direct[mine] == k).mean()
    assert np.allclose(result.probabilities.sum(axis=1), 1.0)


def test_most_confident_mistakes_are_wrong_and_sorted(small_model, mnist):
    result = evaluate(small_model, mnist.test_x[:3000], mnist.test_y[:3000])
    mistakes = result.most_confident_mistakes(10)
    assert len(mistakes) == 10
    assert all(m.true != m.predicted and m.true == mnist.test_y[m.index] for m in mistakes)
    confidences = [m.probability for m in mistakes]
    assert confidences == sorted(confidences, reverse=True)
    assert confidences[0] == result.probabilities[result.predictions != result.labels].max()
    assert f"#{mistakes[0].index}" in format_report(result)


def test_predict_probabilities_batches_do_not_change_the_numbers(small_model, mnist):
    images = mnist.test_x[:250]
    with torch.no_grad():
        direct = small_model.probabilities(to_tensor(images)).double().numpy()
    assert np.array_equal(predict_probabilities(small_model, images, batch_size=250), direct)
    assert np.allclose(predict_probabilities(small_model, to_tensor(images), batch_size=7), direct, atol=1e-6)
    assert predict_probabilities(small_model, images[:0]).shape == (0, 10)
    few = dataset_images(mnist, [0, 1, 2])
    assert np.array_equal(predict_images(small_model, few), predict_probabilities(small_model, images[:3], 3))
    small_model.train()
    predict_probabilities(small_model, images[:5])
    assert small_model.training  # the mode is restored
    with pytest.raises(UserError, match="no images"):
        evaluate(small_model, images[:0], [])
