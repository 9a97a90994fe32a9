"""The backend-neutral helpers both adapters build on: docstring pieces, masks, initial logits."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from ppl_arms._autoguide import SiteKind, SiteSpec, initial_logits
from ppl_arms._docs import fill_doc
from ppl_arms._sites import combine_masks


def test_fill_doc_indents_the_piece_and_leaves_other_braces():
    @fill_doc(PIECE="first line\n\n  second, indented\n")
    def f() -> None:
        """Title with {braces}.

        {PIECE}

        Returns:
            Nothing.
        """

    assert f.__doc__ == (
        "Title with {braces}.\n\n        first line\n\n          second, indented\n\n"
        "        Returns:\n            Nothing.\n        "
    )


def test_fill_doc_names_a_missing_marker():
    with pytest.raises(ValueError, match=r"docstring has no \{PIECE\} line"):

        @fill_doc(PIECE="text")
        def f() -> None:
            """No marker."""


@pytest.mark.parametrize(
    "as_bool",
    [lambda m: torch.as_tensor(m, dtype=torch.bool), lambda m: jnp.asarray(m, dtype=bool)],
    ids=["torch", "jax"],
)
def test_combine_masks_broadcasts_each_layer_and_takes_the_conjunction(as_bool):
    assert combine_masks([(None, 0), (True, 1)], (2, 3), as_bool) is None
    batch = [True, False]  # masks the batch dim of a (2, 3) site with one event dim
    element = [[True, True, False], [True, True, True]]
    mask = combine_masks([(batch, 1), (element, 0), (True, 0)], (2, 3), as_bool)
    expected = np.array([[True, True, False], [False, False, False]])
    np.testing.assert_array_equal(np.asarray(mask), expected)


@pytest.mark.parametrize("as_array", [torch.tensor, jnp.asarray], ids=["torch", "jax"])
def test_initial_logits_uniform_and_prior(as_array):
    prior = as_array([[0.0, 25.0, -30.0]])
    spec = SiteSpec(SiteKind.CATEGORICAL, 0, 1, None)
    np.testing.assert_array_equal(
        np.asarray(initial_logits(spec, (2, 3), prior, "uniform")), np.zeros((2, 3))
    )
    logits = np.asarray(initial_logits(spec, (2, 3), prior, "prior"))
    # the maximum moved to 0, then clipped to [-10, 10]; broadcast over the plate
    np.testing.assert_array_equal(logits, np.array([[-10.0, 0.0, -10.0]] * 2))
    bernoulli = SiteSpec(SiteKind.BERNOULLI, 0, 0, None)
    clipped = initial_logits(bernoulli, (1, 3), prior, "prior")
    np.testing.assert_array_equal(np.asarray(clipped), np.array([[0.0, 10.0, -10.0]]))
