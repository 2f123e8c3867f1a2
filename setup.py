"""Packaging: the repository's top-level folders ship inside the ``crm_portal`` namespace.

``modules/`` becomes ``crm_portal.modules``, ``profiles/``, ``buttons/`` and ``themes/`` become
``crm_portal.profiles`` … (read through ``importlib.resources``), so an installed portal puts no
generic top-level name into site-packages. Every folder is a package (templates and static files
included), and the translation catalogues are compiled into the build.
"""
from pathlib import Path

from setuptools import find_namespace_packages, setup
from setuptools.command.build_py import build_py

#: Distribution package → folder in the repository.
ROOTS = {
    "crm_portal": "crm_portal",
    "crm_portal.modules": "modules",
    "crm_portal.profiles": "profiles",
    "crm_portal.buttons": "buttons",
    "crm_portal.themes": "themes",
}


def _packages() -> list[str]:
    found = []
    for package, folder in ROOTS.items():
        found.append(package)
        found += [f"{package}.{sub}" for sub in find_namespace_packages(folder, exclude=["*__pycache__*"])]
    return found


class BuildWithCatalogues(build_py):
    """Compile every ``translations/<lang>/LC_MESSAGES/messages.po`` into its ``.mo`` in the build."""

    def run(self) -> None:
        super().run()
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        for package, folder in ROOTS.items():
            for po_path in Path(folder).rglob("translations/*/LC_MESSAGES/*.po"):
                relative = po_path.relative_to(folder).with_suffix(".mo")
                target = Path(self.build_lib, *package.split("."), relative)
                target.parent.mkdir(parents=True, exist_ok=True)
                with po_path.open("rb") as source:
                    catalog = read_po(source, locale=po_path.parts[-3])
                with target.open("wb") as out:
                    write_mo(out, catalog, use_fuzzy=False)


setup(
    package_dir=ROOTS,
    packages=_packages(),
    package_data={"": ["*"]},
    exclude_package_data={"": ["*.pyc", "*.mo"]},
    cmdclass={"build_py": BuildWithCatalogues},
)
