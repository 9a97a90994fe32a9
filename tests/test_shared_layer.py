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


def _bernoulli_sites():
    """A Bernoulli site of batch shape (2, 3), unwrapped by each adapter."""
    import numpyro.distributions as ndist
    import pyro.distributions as pdist

    from ppl_arms.numpyro._sites import unwrap as unwrap_numpyro
    from ppl_arms.pyro._sites import unwrap as unwrap_pyro

    logits = np.linspace(-1.0, 1.0, 6).reshape(2, 3)
    return [
        (unwrap_pyro(pdist.Bernoulli(logits=torch.tensor(logits))), torch.tensor),
        (unwrap_numpyro(ndist.Bernoulli(logits=jnp.asarray(logits))), jnp.asarray),
    ]


@pytest.mark.parametrize("index", [0, 1], ids=["torch", "jax"])
def test_latent_normalises_the_scale_and_keeps_the_logits(index):
    from ppl_arms._records import SiteGradient, SitePlan, latent
    from ppl_arms.core.estimators import LOORF, DistKind

    info, as_array = _bernoulli_sites()[index]
    plan = SitePlan("z", DistKind.BERNOULLI, LOORF(), 0)
    value = as_array(np.ones((2, 3)))
    for none in (None, 1.0):
        assert latent(plan, info, value, none, None).scale is None
    site = latent(plan, info, value, 2.0, None)
    np.testing.assert_array_equal(np.asarray(site.scale), np.full((2, 3), 2.0))
    np.testing.assert_array_equal(np.asarray(site.params), np.asarray(info.logits()))
    assert site.df_dz is None and dict(site.learned) == {}
    g = as_array(np.zeros((2, 3)))
    with_gradient = latent(
        plan, info, value, as_array(np.array([3.0, 4.0]))[:, None], SiteGradient(g, {"a": g})
    )
    np.testing.assert_array_equal(np.asarray(with_gradient.scale), [[3.0] * 3, [4.0] * 3])
    assert with_gradient.df_dz is g and set(with_gradient.learned) == {"a"}


def test_split_signal_holds_the_chosen_values_fixed_and_collects_their_own_terms():
    from ppl_arms._sample_gradient import split_signal

    z = torch.tensor(2.0, requires_grad=True)
    sites = {"z": {"value": z}, "x": {"value": 3.0 * z}}
    programs = [(1.0, list(sites.items())), (-1.0, [("z", sites["z"])])]
    rest, own = split_signal(
        programs,
        {"z": z},
        lambda site, value: value**2,
        lambda site, name: 5.0 * site["value"],
        torch.zeros(()),
    )
    # rest: z^2 (z detached) + (3z)^2 - z^2 (detached); own: 5z - 5z
    (g_rest,) = torch.autograd.grad(rest, [z])
    assert float(rest.detach()) == pytest.approx(36.0)
    assert float(g_rest) == pytest.approx(2 * 9 * 2.0)
    assert set(own) == {"z"} and float(own["z"].detach()) == 0.0


def test_latent_sites_names_a_missing_or_unsupported_site():
    import numpyro.distributions as ndist

    from ppl_arms._sample_gradient import latent_sites
    from ppl_arms.numpyro._sites import unwrap

    trace = {
        "z": {"type": "sample", "is_observed": False, "fn": ndist.Bernoulli(logits=0.0)},
        "x": {"type": "sample", "is_observed": False, "fn": ndist.Normal(0.0, 1.0)},
    }
    infos = latent_sites(["z", "z"], trace, unwrap, "route")
    assert list(infos) == ["z"]
    with pytest.raises(ValueError, match="site 'y' is not a latent sample site"):
        latent_sites(["y"], trace, unwrap, "route")
    with pytest.raises(ValueError, match=r"site 'x' has a Normal distribution.*\(route\)"):
        latent_sites(["x"], trace, unwrap, "route")


def test_planned_sites_record_the_plan_and_build_latents():
    import numpyro.distributions as ndist

    from ppl_arms._planning import PlannedSites
    from ppl_arms.config import EstimatorConfig
    from ppl_arms.numpyro._sites import unwrap

    handler = PlannedSites()
    handler._init_plans(EstimatorConfig("loorf", num_samples=4), vimco=False)
    msg = {"name": "z", "fn": ndist.Bernoulli(logits=jnp.zeros(3)), "infer": {}}
    plan, info = handler.plan(msg, None, unwrap)
    assert handler.plans == {"z": plan} and handler.distributions == {"z": info}
    assert handler.coupled("z") == (None, None)
    assert handler.latent("other", jnp.ones(3), None, None) is None
    assert handler.latent("z", jnp.ones(3), None, None).plan is plan
    rsample = {"name": "y", "fn": ndist.Normal(0.0, 1.0), "infer": {}}
    assert handler.plan(rsample, None, unwrap) is None and "y" not in handler.plans
