from flowers_core.transforms import Preprocess


def test_preprocess_round_trips_through_the_manifest_dict():
    pre = Preprocess(260, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    d = pre.to_dict()
    assert d["resize_size"] == pre.resize_size == 297
    assert Preprocess.from_dict(d) == pre
