"""One operator per file; `OPERATORS` is the tuple the add-on registers."""

from .cancel import GTR_OT_cancel
from .check_backend import GTR_OT_check_backend
from .copy_diagnostics import GTR_OT_copy_diagnostics
from .export_views import GTR_OT_export_views
from .import_views import GTR_OT_import_views
from .reconstruct import GTR_OT_reconstruct
from .refine_texture import GTR_OT_refine_texture
from .render_selected import GTR_OT_render_selected_to_3d
from .repair_backend import GTR_OT_repair_backend
from .setup_backend import GTR_OT_setup_backend

OPERATORS = (
    GTR_OT_import_views,
    GTR_OT_export_views,
    GTR_OT_reconstruct,
    GTR_OT_render_selected_to_3d,
    GTR_OT_refine_texture,
    GTR_OT_cancel,
    GTR_OT_setup_backend,
    GTR_OT_repair_backend,
    GTR_OT_check_backend,
    GTR_OT_copy_diagnostics,
)
