import concurrent.futures

import jax

from brunoflow.ad import jax_settings


def test_settings_of_one_thread_go_along_to_another():
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    with jax.enable_x64(True), jax.default_matmul_precision("highest"):
        settings = jax_settings.current()
        assert settings == (True, "highest")
        assert pool.submit(jax_settings.current).result() == (False, None)  # they held for this thread only

    def under(settings):
        with jax_settings.applied(settings):
            return jax_settings.current()

    assert pool.submit(under, settings).result() == (True, "highest")
    assert jax_settings.current() == (False, None)
