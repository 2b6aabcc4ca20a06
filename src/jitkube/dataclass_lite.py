"""An import-cheap stand-in for `dataclasses` on the hot path.

`import dataclasses` costs ≈ 11 ms (it pulls inspect, ast, dis and tokenize) and every
`@dataclass` compiles its methods with `exec` (≈ 0.3 to 1 ms each); `jitkube kubectl` runs
for every command an agent types, so the classes on that path use this module instead.
It builds the same methods from closures: `__init__` (positional and keyword, defaults,
`default_factory`, `init=False`, `__post_init__`), `__repr__`, `__eq__`, `__hash__`
(frozen), frozen `__setattr__`, `slots=True` and `__match_args__`. Methods a class body
defines itself (a `__repr__` that hides tokens) are kept, as `dataclasses` does.

For mypy the names are the real `dataclasses` ones, so type checking is unchanged. At run
time `dataclasses.replace/fields/asdict/is_dataclass` still work on these classes: the
first access to `__dataclass_fields__` builds real field objects (importing `dataclasses`
then, off the hot path).
"""

from __future__ import annotations

__all__ = ["asdict", "dataclass", "field", "fields", "replace"]

_MISSING: Any = type("_MissingType", (), {"__repr__": lambda self: "MISSING"})()


class LiteField:
    """One field of a lite dataclass (the subset of `dataclasses.Field` jitkube uses)."""

    __slots__ = ("compare", "default", "default_factory", "init", "name", "repr")

    def __init__(
        self,
        default: Any = _MISSING,
        default_factory: Any = _MISSING,
        init: bool = True,
        repr: bool = True,
        compare: bool = True,
    ) -> None:
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.init = init
        self.repr = repr
        self.compare = compare


_SLOT: Any = type(LiteField.__dict__["name"])  # member_descriptor: what __slots__ makes


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen instance (as `dataclasses.FrozenInstanceError`)."""


class _DataclassFields:
    """`__dataclass_fields__` built on first access, so `dataclasses.*` helpers work."""

    def __get__(self, obj: object, owner: type) -> dict[str, Any]:
        import dataclasses

        spec = []
        for f in owner.__lite_fields__:  # type: ignore[attr-defined]
            kw: dict[str, Any] = {"init": f.init, "repr": f.repr, "compare": f.compare}
            if f.default is not _MISSING:
                kw["default"] = f.default
            elif f.default_factory is not _MISSING:
                kw["default_factory"] = f.default_factory
            spec.append((f.name, object, dataclasses.field(**kw)))
        shadow = dataclasses.make_dataclass(owner.__name__, spec)
        result: dict[str, Any] = shadow.__dataclass_fields__  # type: ignore[attr-defined]
        type.__setattr__(owner, "__dataclass_fields__", result)  # built once per class
        return result


def _is_classvar(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar", "t.ClassVar"))


def _collect(cls: type) -> list[LiteField]:
    found: dict[str, LiteField] = {}
    for base in reversed(cls.__mro__[1:]):
        for f in base.__dict__.get("__lite_fields__", ()):
            found[f.name] = f
    # Own annotations only (the bases were collected above); inspect is what we avoid.
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063
        if _is_classvar(annotation):
            continue
        value = cls.__dict__.get(name, _MISSING)
        f = value if isinstance(value, LiteField) else LiteField(default=value)
        f.name = name
        found[name] = f
    return list(found.values())


def _make_init(cls_name: str, flds: list[LiteField], post_init: bool, fast: list[Any]) -> Any:
    """`fast`, once _process fills it: [the class, its slot setters in field order]."""
    positional = tuple(f.name for f in flds if f.init)
    count = len(positional)
    # (name, default, factory) for each init field after the positional ones.
    specs = tuple((f.name, f.default, f.default_factory) for f in flds if f.init)
    later = tuple((f.name, f.default, f.default_factory) for f in flds if not f.init)
    setter = object.__setattr__
    missing = _MISSING

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if fast and not kwargs and len(args) == count and type(self) is fast[0]:
            # Every field given positionally to the class itself (a subclass may define its
            # own descriptors): straight through the slot descriptors, filled by _process
            # only when there is no init=False field and no __post_init__.
            for put, value in zip(fast[1], args, strict=True):
                put(self, value)
            return
        given = len(args)
        if given > count:
            raise TypeError(
                f"{cls_name}() takes {count} positional arguments but {given} were given"
            )
        for name, value in zip(positional, args, strict=False):
            setter(self, name, value)
        if kwargs:
            for name in positional[:given]:
                if name in kwargs:
                    raise TypeError(f"{cls_name}() got multiple values for argument {name!r}")
        for name, default, factory in specs[given:]:
            if name in kwargs:
                value = kwargs.pop(name)
            elif default is not missing:
                value = default
            elif factory is not missing:
                value = factory()
            else:
                raise TypeError(f"{cls_name}() missing required argument: {name!r}")
            setter(self, name, value)
        if kwargs:
            raise TypeError(
                f"{cls_name}() got an unexpected keyword argument {next(iter(kwargs))!r}"
            )
        for name, default, factory in later:
            if default is not missing:
                setter(self, name, default)
            elif factory is not missing:
                setter(self, name, factory())
        if post_init:
            self.__post_init__()

    return __init__


def _make_repr(names: tuple[str, ...]) -> Any:
    def __repr__(self: Any) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
        return f"{type(self).__qualname__}({inner})"

    return __repr__


def _make_eq(names: tuple[str, ...]) -> Any:
    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        # Tuples, as dataclasses compare: identity first, so a field holding NaN is equal.
        mine = tuple(getattr(self, n) for n in names)
        return mine == tuple(getattr(other, n) for n in names)

    return __eq__


def _make_hash(names: tuple[str, ...]) -> Any:
    def __hash__(self: Any) -> int:
        return hash(tuple(getattr(self, n) for n in names))

    return __hash__


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _getstate(self: Any) -> list[Any]:
    return [getattr(self, f.name) for f in self.__lite_fields__]


def _setstate(self: Any, state: list[Any]) -> None:
    for f, value in zip(self.__lite_fields__, state, strict=True):
        object.__setattr__(self, f.name, value)


def _process(cls: type, frozen: bool, slots: bool, repr: bool, eq: bool) -> type:
    flds = _collect(cls)
    own = cls.__dict__
    ns: dict[str, Any] = {}

    def put(name: str, value: Any) -> None:
        if name not in own:
            ns[name] = value

    post_init = hasattr(cls, "__post_init__")
    fast: list[Any] = []
    put("__init__", _make_init(cls.__name__, flds, post_init, fast))
    if repr:
        put("__repr__", _make_repr(tuple(f.name for f in flds if f.repr)))
    if eq:
        compared = tuple(f.name for f in flds if f.compare)
        put("__eq__", _make_eq(compared))
        if "__hash__" not in own:
            ns["__hash__"] = _make_hash(compared) if frozen else None
    if frozen:
        put("__setattr__", _frozen_setattr)
        put("__delattr__", _frozen_delattr)
    ns["__match_args__"] = tuple(f.name for f in flds if f.init)
    ns["__lite_fields__"] = tuple(flds)
    ns["__dataclass_fields__"] = _DataclassFields()
    if slots:
        body = dict(own)
        inherited = {s for b in cls.__mro__[1:] for s in b.__dict__.get("__slots__", ())}
        body["__slots__"] = tuple(f.name for f in flds if f.name not in inherited)
        for f in flds:
            body.pop(f.name, None)  # defaults live in __init__, not as class attributes
        body.pop("__dict__", None)
        body.pop("__weakref__", None)
        body.update(ns)
        if frozen:
            body.setdefault("__getstate__", _getstate)
            body.setdefault("__setstate__", _setstate)
        made = type(cls)(cls.__name__, cls.__bases__, body)
        if "__init__" in ns and not post_init and all(f.init for f in flds):
            descriptors: list[Any] = [getattr(made, f.name, None) for f in flds]
            if all(type(d) is _SLOT for d in descriptors):
                fast.extend([made, tuple(d.__set__ for d in descriptors)])
        return made
    for f in flds:
        if isinstance(own.get(f.name), LiteField):
            # A plain default stays a class attribute (as in dataclasses); a field() does not.
            if f.default is not _MISSING:
                setattr(cls, f.name, f.default)
            else:
                delattr(cls, f.name)
    for name, value in ns.items():
        setattr(cls, name, value)
    return cls


def _lite_dataclass(
    cls: type | None = None,
    /,
    *,
    frozen: bool = False,
    slots: bool = False,
    repr: bool = True,
    eq: bool = True,
) -> Any:
    def wrap(c: type) -> type:
        return _process(c, frozen, slots, repr, eq)

    return wrap if cls is None else wrap(cls)


def _lite_field(
    *,
    default: Any = _MISSING,
    default_factory: Any = _MISSING,
    init: bool = True,
    repr: bool = True,
    compare: bool = True,
) -> Any:
    return LiteField(default, default_factory, init, repr, compare)


def _lite_fields(class_or_instance: Any) -> tuple[LiteField, ...]:
    result: tuple[LiteField, ...] = class_or_instance.__lite_fields__
    return result


def _lite_replace(obj: Any, /, **changes: Any) -> Any:
    for f in obj.__lite_fields__:
        if not f.init:
            if f.name in changes:
                raise ValueError(f"field {f.name} is declared with init=False")
        elif f.name not in changes:
            changes[f.name] = getattr(obj, f.name)
    return obj.__class__(**changes)


def _copy_value(value: Any) -> Any:
    if hasattr(type(value), "__lite_fields__"):
        return _lite_asdict(value)
    if isinstance(value, list | tuple):
        return type(value)(_copy_value(v) for v in value)
    if isinstance(value, dict):
        return type(value)((_copy_value(k), _copy_value(v)) for k, v in value.items())
    if value is None or isinstance(value, str | int | float | bytes):
        return value
    import copy

    return copy.deepcopy(value)


def _lite_asdict(obj: Any) -> dict[str, Any]:
    return {f.name: _copy_value(getattr(obj, f.name)) for f in obj.__lite_fields__}


TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from dataclasses import asdict, dataclass, field, fields, replace
    from typing import Any
else:
    asdict = _lite_asdict
    dataclass = _lite_dataclass
    field = _lite_field
    fields = _lite_fields
    replace = _lite_replace
