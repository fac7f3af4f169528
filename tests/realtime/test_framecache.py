"""The replay frame cache: bounded, least recently used out."""

from realtime.framecache import FrameCache


def test_the_cache_keeps_the_most_recently_used_frames_up_to_its_size():
    cache = FrameCache(size=3)
    cache.put_many([(1, "one"), (2, "two"), (3, "three")])
    assert cache.get_many([1]) == {1: "one"}  # 1 is now the most recently used
    cache.put_many([(4, "four")])

    assert cache.get_many([1, 2, 3, 4]) == {1: "one", 3: "three", 4: "four"}


def test_a_lookup_returns_only_what_the_cache_holds():
    cache = FrameCache(size=10)
    cache.put_many([(5, "five")])

    assert cache.get_many([4, 5, 6]) == {5: "five"}
    cache.clear()
    assert cache.get_many([5]) == {}
