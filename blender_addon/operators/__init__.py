"""One operator per file; `OPERATORS` is the tuple the add-on registers."""

from .bake_to_active import GTR_OT_bake_to_active
from .cancel import GTR_OT_cancel
from .check_backend import GTR_OT_check_backend
from .copy_diagnostics import GTR_OT_copy_diagnostics
from .export_glb import GTR_OT_export_glb
from .export_views import GTR_OT_export_views
from .import_views import GTR_OT_import_views
from .reconstruct import GTR_OT_reconstruct
from .refine_texture import GTR_OT_refine_texture
from .render_selected import GTR_OT_render_selected_to_3d
from .repair_backend import GTR_OT_repair_backend
from .retry_lower import GTR_OT_retry_lower
from .setup_backend import GTR_OT_setup_backend
from .unload_model import GTR_OT_unload_model

OPERATORS = (
    GTR_OT_import_views,
    GTR_OT_export_views,
    GTR_OT_reconstruct,
    GTR_OT_render_selected_to_3d,
    GTR_OT_refine_texture,
    GTR_OT_bake_to_active,
    GTR_OT_export_glb,
    GTR_OT_cancel,
    GTR_OT_retry_lower,
    GTR_OT_unload_model,
    GTR_OT_setup_backend,
    GTR_OT_repair_backend,
    GTR_OT_check_backend,
    GTR_OT_copy_diagnostics,
)
