from tests.models._common import digits  # noqa: F401  (session fixture)
