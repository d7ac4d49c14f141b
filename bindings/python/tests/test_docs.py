"""Every public module, class, function, method and property has a docstring."""
import importlib
import inspect
import pkgutil

import mmrec


def test_public_api_is_documented():
    missing = []
    for info in pkgutil.iter_modules(mmrec.__path__):
        mod = importlib.import_module("mmrec." + info.name)
        if not mod.__doc__:
            missing.append(mod.__name__)
        for name, obj in vars(mod).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and not obj.__doc__:
                missing.append("%s.%s" % (mod.__name__, name))
            if inspect.isclass(obj):
                for n, m in vars(obj).items():
                    f = m.__func__ if isinstance(m, classmethod) else m
                    if not n.startswith("_") and (inspect.isfunction(f) or isinstance(f, property)) \
                            and not f.__doc__:
                        missing.append("%s.%s.%s" % (mod.__name__, name, n))
    assert missing == []
