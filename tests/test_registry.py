import pytest

from scsam_lite.errors import ConfigError
from scsam_lite.registry import Registry


def test_register_get_and_suggestions():
    reg: Registry[int] = Registry("dataset")
    reg.register("kvasir-seg", 1)

    @reg.register("cvc-clinicdb")
    def build():
        return 2

    assert reg.get("kvasir-seg") == 1 and reg.get("cvc-clinicdb")() == 2
    assert reg.names() == ["cvc-clinicdb", "kvasir-seg"] and "kvasir-seg" in reg and len(reg) == 2
    with pytest.raises(ConfigError) as e:
        reg.get("kvasir")
    assert "did you mean 'kvasir-seg'" in str(e.value)
    with pytest.raises(ValueError):
        reg.register("kvasir-seg", 3)
