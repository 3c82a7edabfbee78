"""Install the built zip, enable, check what registered, disable, check that nothing is left."""

import sys

import bpy
from common import PACKAGE, addon_module, finish, install


def gtr_types() -> list[str]:
    return sorted(name for name in dir(bpy.types) if name.startswith("GTR_"))


before = gtr_types()
install(sys.argv[1])
registered = gtr_types()
prefs = bpy.context.preferences.addons[PACKAGE].preferences
defaults = addon_module("preferences").option_values(prefs)  # every option, as a request sends it
rasterizer = prefs.bl_rna.properties["build_gpu_rasterizer"]
rasterizer_preference = {"default": prefs.build_gpu_rasterizer, "name": rasterizer.name, "text": rasterizer.description}
has_props = hasattr(bpy.types.Scene, "gtr") and hasattr(bpy.types.WindowManager, "gtr_status")
operators = sorted(name for name in dir(bpy.ops.gtr))
classes = addon_module().CLASSES
registered_classes = [c.__name__ for c in classes if c.is_registered]
bpy.ops.preferences.addon_disable(module=PACKAGE)
finish(
    {
        "before": before,
        "registered": registered,
        "operators": operators,
        "had_props": has_props,
        "after": gtr_types(),
        "classes": registered_classes,
        "classes_after": [c.__name__ for c in classes if c.is_registered],
        "props_after": hasattr(bpy.types.Scene, "gtr"),
        "enabled_after": PACKAGE in bpy.context.preferences.addons,
        "torch_imported": "torch" in sys.modules,
        "blender": bpy.app.version_string,
        "defaults": defaults,
        "rasterizer_preference": rasterizer_preference,
    }
)
