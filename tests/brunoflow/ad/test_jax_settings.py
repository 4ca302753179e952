import concurrent.futures

import jax

from brunoflow.ad import jax_settings


def test_settings_of_one_thread_go_along_to_another():
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    outside = pool.submit(jax_settings.current).result()
    with jax.enable_x64(not outside[0]), jax.default_matmul_precision("highest"):
        settings = jax_settings.current()
        assert settings == (not outside[0], "highest")
        assert pool.submit(jax_settings.current).result() == outside  # they held for this thread only

    def under(settings):
        with jax_settings.applied(settings):
            return jax_settings.current()

    assert pool.submit(under, settings).result() == settings
    assert jax_settings.current() == outside
