"""Which TSBN statistics a step uses: trained ones at the trained steps, the last trained ones past them,
never a slot that no data ever reached. Checked at the first step, the last trained step and the
first step past it."""
import copy
import dataclasses

import pytest
import torch

from visrecur import FRNN, TimeStepError
from visrecur.architecture import zoo
from visrecur.nn.blocks import TimeSpecificBatchNorm
from visrecur.artifacts.checkpoint import load_state


def trained_model(readout_time=3, loss_times=(2, 3), batches=3, seed=0):
    """A small 2-state FRNN after a few training batches read out at ``loss_times``."""
    torch.manual_seed(seed)
    model = zoo.build("frnn_2state_shared", channels=(3, 4), readout_time=readout_time, input_size=8)
    model.train()
    for _ in range(batches):
        model(torch.randn(16, 3, 8, 8) + 0.5, readout_time=list(loss_times))
    return model.eval()


def test_slots_exist_for_the_steps_transitions_run_and_are_all_trained():
    model = trained_model(readout_time=3)
    # readout 3 reads the last state at step 2: transitions run at steps 1 and 2, never at 3;
    # h2 holds data from t = 1, so what leaves it runs from t = 2
    expected = {"h1->h1": [1, 2], "h1->h2": [1, 2], "h2->h1": [2], "h2->h2": [2]}
    assert sorted(model.norms) == sorted(expected)
    for key, norms in model.norms.items():
        for norm in norms:
            assert norm.num_steps == 2, key
            assert norm.trained_steps() == expected[key], key
            assert int(norm.stats[0].num_batches_tracked) == 0  # nothing runs at t = 0
    assert model.postnet.norm.num_steps == 3
    assert model.postnet.norm.trained_steps() == [2, 3]
    assert model.untrained_steps(3) == []
    assert model.untrained_steps(5) == [3, 4, 5]


def test_first_step_past_training_uses_the_last_trained_statistics():
    model = trained_model(readout_time=3)
    x = torch.randn(4, 3, 8, 8)
    # independent reference: give every TSBN explicit copies of its last trained step, marked trained
    reference = copy.deepcopy(model)
    for norm in [n for norms in reference.norms.values() for n in norms] + [reference.postnet.norm]:
        last = norm.stats[norm.trained_steps()[-1]]
        norm.extend(6, init="fresh")
        for t in range(norm.trained_steps()[-1] + 1, 7):
            norm.stats[t].load_state_dict(last.state_dict())
        norm._trained = None
    reference.spec = dataclasses.replace(reference.spec, time_steps=6)
    with torch.no_grad():
        for t in (4, 5, 6):  # the first readout past training and beyond
            torch.testing.assert_close(model(x, readout_time=t), reference(x, readout_time=t))
        # inside the trained steps nothing is borrowed: t = 2 (first readout) and 3 (last trained)
        for t in (2, 3):
            torch.testing.assert_close(model(x, readout_time=t), reference(x, readout_time=t))


def test_perturbing_the_last_trained_slot_changes_the_first_step_past_it():
    model = trained_model(readout_time=3)
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        before = {t: model(x, readout_time=t) for t in (2, 3, 4)}
        for norms in model.norms.values():
            norms[0].stats[2].running_mean.add_(3.0)  # step 2 = the last trained transition step
        after = {t: model(x, readout_time=t) for t in (2, 3, 4)}
    assert torch.equal(before[2], after[2])  # readout 2 runs step 1 only
    assert not torch.allclose(before[3], after[3])
    assert not torch.allclose(before[4], after[4])  # readout 4 runs step 3 with step 2's statistics


def test_an_untrained_extra_slot_is_never_used():
    """visrecur 0.1 kept an untrained slot at step time_steps for every transition; such a checkpoint
    must load and behave as its trained statistics say."""
    model = trained_model(readout_time=3)
    x = torch.randn(4, 3, 8, 8)
    state = model.state_dict()
    for key in [k for k in state if k.startswith("norms.") and ".stats.2." in k]:
        extra = key.replace(".stats.2.", ".stats.3.")
        state[extra] = torch.zeros_like(state[key]) if key.endswith("num_batches_tracked") \
            else torch.full_like(state[key], 50.0)  # garbage, as never estimated
    fresh = zoo.build("frnn_2state_shared", channels=(3, 4), readout_time=3, input_size=8)
    load_state(fresh, state)
    fresh.eval()
    assert fresh.norms["h1->h1"][0].num_steps == 3
    with torch.no_grad():
        for t in (2, 3, 4, 5):
            torch.testing.assert_close(fresh(x, readout_time=t), model(x, readout_time=t))


def test_error_policy_refuses_the_first_untrained_step_only():
    spec = dataclasses.replace(zoo.frnn_2state_spec(channels=(3, 4), readout_time=3, input_size=8),
                               beyond_trained="error")
    model = FRNN(spec).train()
    model(torch.randn(8, 3, 8, 8), readout_time=[2, 3])
    model.eval()
    x = torch.randn(2, 3, 8, 8)
    model(x, readout_time=3)  # the last trained readout works
    with pytest.raises(TimeStepError, match="t=3 has no trained"):
        model(x, readout_time=4)


def test_post_net_readout_never_trained_borrows_the_nearest_trained():
    model = trained_model(readout_time=4, loss_times=(4,))  # post-net trained at readout 4 only
    assert model.postnet.norm.trained_steps() == [4]
    norm = model.postnet.norm
    assert norm.slot(2) == 4 and norm.slot(3) == 4 and norm.slot(4) == 4 and norm.slot(9) == 4
    transition = model.norms["h1->h1"][0]
    assert transition.trained_steps() == [1, 2, 3]
    assert [transition.slot(t) for t in (1, 3, 4, 8)] == [1, 3, 3, 3]


def test_extend_copies_a_trained_slot_and_leaves_new_steps_untrained():
    bn = TimeSpecificBatchNorm(2, num_steps=3, momentum=1.0).train()
    bn(torch.randn(32, 2, 3, 3) + 4.0, 1)
    bn(torch.randn(32, 2, 3, 3) - 2.0, 2)  # step 3 never trained
    bn.eval()
    bn.extend(5)
    assert bn.num_steps == 5 and bn.trained_steps() == [1, 2]
    for t in (4, 5):
        assert torch.equal(bn.stats[t].running_mean, bn.stats[2].running_mean)
    assert bn.slot(3) == 2 and bn.slot(5) == 2


def test_training_past_the_built_steps_is_refused():
    model = trained_model(readout_time=3)
    model.train()
    with pytest.raises(TimeStepError, match="extend_time"):
        model(torch.randn(4, 3, 8, 8), readout_time=5)


def _inputs_seen_in_eval(model, images, state, t):
    """The state tensor at step t as evaluation computes it (the input of every BN reading it)."""
    seen = {}
    with torch.no_grad(), model.observe(lambda name, step, x: seen.update({(name, step): x.clone()})):
        model(images, readout_time=[max(t + 1, model.spec.graph.earliest_readout)], until=t)
    return seen[(state, t)]


def test_recalibrated_statistics_equal_the_evaluation_inputs():
    model = trained_model(readout_time=3)
    images = torch.randn(64, 3, 8, 8) + 0.5
    steps = model.recalibrate([images], readout_time=6)
    assert steps == [3, 4, 5, 6]
    assert model.spec.time_steps == 6
    model.eval()
    for t in (3, 4, 5):  # transitions at the first recalibrated step and after it
        source = _inputs_seen_in_eval(model, images, "h1", t - 1)  # h1 -> h2 reads h1 at t - 1
        stats = model.norms["h1->h2"][0].stats[t]
        torch.testing.assert_close(stats.running_mean, source.mean(dim=(0, 2, 3)))
        torch.testing.assert_close(stats.running_var, source.transpose(0, 1).reshape(3, -1).var(dim=1))
    for t in (4, 6):  # post-net readout t reads the last state at t - 1
        last = _inputs_seen_in_eval(model, images, "h2", t - 1)
        torch.testing.assert_close(model.postnet.norm.stats[t].running_mean, last.mean(dim=(0, 2, 3)))
    # trained statistics did not move
    reference = trained_model(readout_time=3)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, msg=key)


def test_recalibration_fills_the_untrained_slot_of_an_old_checkpoint():
    model = trained_model(readout_time=3)
    model.extend_time(4, init="fresh")  # like visrecur 0.1's extra slot at step 3: present, untrained
    assert model.untrained_steps(4) == [3, 4]
    model.recalibrate([torch.randn(32, 3, 8, 8)], readout_time=4)
    assert all(3 in n.trained_steps() for norms in model.norms.values() for n in norms)
    assert model.untrained_steps(4) == []


def test_describe_statistics_names_borrowed_and_initial_statistics():
    

    model = trained_model(readout_time=3)
    assert model.borrowed_statistics(3) == {}
    assert "estimated for it" in model.describe_statistics(3)
    # readout 5: transitions at steps 3, 4 borrow step 2; post-net readouts 4, 5 borrow readout 3
    assert model.borrowed_statistics(5) == {3: {2}, 4: {2, 3}, 5: {3}}
    assert "t3: step 2; t4: step 2, step 3; t5: step 3" in model.describe_statistics(5)
    # a transition that never ran in training keeps its initial statistics: said, and recalibrated
    spec = zoo.frnn_4state_spec(adjacent=True, channels=(2, 2, 2, 2), input_size=16, readout_time=4,
                                time_steps=5)
    model = FRNN(spec).train()
    model(torch.randn(8, 3, 16, 16), readout_time=[4])  # IT arrives at 3: IT->IT never ran
    model.eval()
    assert "initial" in model.borrowed_statistics(5)[4]
    assert 4 in model.untrained_steps(5)
    model.recalibrate([torch.randn(8, 3, 16, 16)], readout_time=5)
    assert model.norms["IT->IT"][0].trained_steps() == [4]
