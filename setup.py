"""Build the optional C accelerators of the SIP parser.

Everything else about the package is in ``pyproject.toml``. The extensions are *optional*:
without a C compiler (or with ``EXOTEL_VOICE_NO_SPEEDUPS=1`` at run time) the package uses
its pure-Python parser, which is the reference the accelerators are tested against
(``tests/sip/test_speedups*.py``). ``make test`` checks that they were built.
"""

from setuptools import Extension, setup


_FLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]

setup(
    ext_modules=[
        Extension(
            "exotel_voice.sip._csdp",
            ["src/exotel_voice/sip/_csdp.c"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
        Extension(
            "exotel_voice.sip._cmessage",
            ["src/exotel_voice/sip/_cmessage.c", "src/exotel_voice/sip/_celements.c"],
            depends=["src/exotel_voice/sip/_cmessage.h"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
    ],
)
