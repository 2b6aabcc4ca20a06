"""jitkube.dataclass_lite behaves like `dataclasses` where jitkube's classes rely on it."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from jitkube.dataclass_lite import asdict, dataclass, field, fields, replace
from jitkube.runner import Target
from jitkube.session_cache import CachedSession


@dataclass(frozen=True, slots=True)
class Point:
    x: int
    y: int = 0
    tags: tuple[str, ...] = ()


@dataclass
class Box:
    items: list[int] = field(default_factory=list)
    label: str = "box"
    hidden: str = field(default="", repr=False, compare=False)


@dataclass(frozen=True)
class Derived:
    a: int
    b: int = field(default=0, compare=False)
    total: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", self.a + self.b)


def test_init_takes_positional_and_keyword_arguments_with_defaults() -> None:
    assert (Point(1).x, Point(1).y, Point(1, 2).y, Point(y=3, x=1).y) == (1, 0, 2, 3)


def test_every_field_given_positionally_sets_each_in_order() -> None:
    """The all-positional fast path of slots classes (slot descriptors) and the general one."""
    p = Point(1, 2, ("a",))
    assert (p.x, p.y, p.tags) == (1, 2, ("a",))
    assert p == Point(x=1, y=2, tags=("a",))
    assert (Box([1], "b", "h").items, Box([1], "b", "h").hidden) == ([1], "h")
    d = Derived(2, 3)  # __post_init__ and an init=False field: the general path
    assert (d.a, d.b, d.total) == (2, 3, 5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Point(), "missing required argument: 'x'"),
        (lambda: Point(1, 2, (), 4), "takes 3 positional arguments but 4 were given"),
        (lambda: Point(1, x=2), "multiple values for argument 'x'"),
        (lambda: Point(1, z=2), "unexpected keyword argument 'z'"),
    ],
)
def test_init_refuses_wrong_arguments_like_dataclasses(call: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        call()  # type: ignore[operator]


def test_default_factory_gives_each_instance_its_own_value() -> None:
    a, b = Box(), Box()
    a.items.append(1)
    assert b.items == []


def test_repr_lists_fields_and_skips_repr_false() -> None:
    assert repr(Point(1, 2)) == "Point(x=1, y=2, tags=())"
    assert repr(Box([1], hidden="s3cret")) == "Box(items=[1], label='box')"


def test_class_defined_repr_is_kept_so_tokens_stay_hidden() -> None:
    target = Target("https://k", b"ca", "tok-SECRET")
    session = CachedSession("ses_1", "https://b", "c", "r", "active", "jks.SECRET", 1.0)
    assert "SECRET" not in repr(target)
    assert "SECRET" not in repr(session)


def test_equality_and_hash_follow_compared_fields() -> None:
    assert Point(1, 2) == Point(1, 2)
    assert Point(1, 2) != Point(1, 3)
    assert hash(Point(1, 2)) == hash(Point(1, 2))
    assert Box([1], hidden="a") == Box([1], hidden="b")
    assert Derived(1, 5) == Derived(1, 6)
    assert Point(1) != (1, 0, ())


def test_mutable_classes_are_unhashable_like_dataclasses() -> None:
    with pytest.raises(TypeError):
        hash(Box())


@pytest.mark.parametrize("obj", [Point(1), Derived(1)])
def test_frozen_instances_refuse_assignment(obj: object) -> None:
    with pytest.raises(AttributeError):
        obj.x = 5  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        del obj.a  # type: ignore[attr-defined]


def test_slots_classes_have_no_instance_dict() -> None:
    assert not hasattr(Point(1), "__dict__")
    assert Point.__slots__ == ("x", "y", "tags")  # type: ignore[attr-defined]


def test_post_init_and_init_false_fields() -> None:
    d = Derived(2, 3)
    assert d.total == 5
    assert repr(d) == "Derived(a=2, b=3)"


def test_replace_fields_and_asdict() -> None:
    p = replace(Point(1, 2), y=7)
    assert p == Point(1, 7)
    assert [f.name for f in fields(Point)] == ["x", "y", "tags"]
    assert asdict(Box([1, 2], "b")) == {"items": [1, 2], "label": "b", "hidden": ""}
    assert replace(Derived(1, 2), a=5).total == 7
    with pytest.raises(ValueError, match="init=False"):
        replace(Derived(1), total=3)


def test_asdict_copies_nested_containers() -> None:
    box = Box([1])
    out = asdict(box)
    out["items"].append(2)
    assert box.items == [1]


def test_stdlib_dataclass_helpers_still_work_off_the_hot_path() -> None:
    p = Point(1, 2)
    assert dataclasses.is_dataclass(p)
    assert dataclasses.replace(p, x=9) == Point(9, 2)
    assert dataclasses.asdict(Box([1], "b")) == {"items": [1], "label": "b", "hidden": ""}
    assert [f.name for f in dataclasses.fields(Derived)] == ["a", "b", "total"]
    assert dataclasses.replace(Derived(1, 2), a=4).total == 6


def test_copy_and_pickle_round_trip_frozen_slots_instances() -> None:
    p = Point(1, 2, ("a",))
    assert copy.copy(p) == p
    assert copy.deepcopy(p) == p
    assert pickle.loads(pickle.dumps(p)) == p  # noqa: S301 - our own bytes
