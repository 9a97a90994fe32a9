import pytest

from models import load_digits


@pytest.fixture(scope="session")
def digits():
    """sklearn's digits, loaded once (64 pixels: the model tests' data)."""
    return load_digits()
