"""Admin of the pipeline's records: environments (saved through their service), mapping specs, docs indexes."""

from django.contrib import admin, messages

from genesis.admin_utils import service_action
from genesis.exceptions import DomainError
from pipeline.dbt.services import environment_set
from pipeline.models import DocsIndex, Environment, IndexedDocument, MappingSpec, MappingSpecVersion
from pipeline.services import mapping_spec_approve
from workflows.environments import environment_build


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    """Environments are saved through ``environment_set`` so each change is permission-checked and recorded."""

    list_display = ["mission", "name", "target", "last_built_at", "last_revision"]
    list_filter = ["name"]
    list_select_related = ["mission", "target"]
    readonly_fields = ["last_built_at", "last_revision"]
    autocomplete_fields = ["target"]
    search_fields = ["mission__name", "target__name"]

    actions = [
        service_action(environment_build, keyword="environment", noun="environment(s)",
                       name="action_build_now", verb="Requested a build in",
                       description="Build the dbt project in this environment now"),
    ]

    def save_model(self, request, obj, form, change):
        saved = environment_set(mission=obj.mission, name=obj.name, target=obj.target, actor=request.user,
                                description=obj.description)
        obj.pk = saved.pk


class MappingSpecVersionInline(admin.TabularInline):
    model = MappingSpecVersion
    fields = ["number", "status", "created_at", "decided_by", "decided_at", "feedback"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(MappingSpec)
class MappingSpecAdmin(admin.ModelAdmin):
    list_display = ["target_table", "mission", "created_at"]
    list_select_related = ["mission"]
    search_fields = ["target_table", "mission__name"]
    readonly_fields = ["mission", "target_table", "created_at"]
    inlines = [MappingSpecVersionInline]

    def has_add_permission(self, request):
        return False


@admin.register(MappingSpecVersion)
class MappingSpecVersionAdmin(admin.ModelAdmin):
    """Versions are written by the mapping agent; people approve or reject them (through the services)."""

    list_display = ["spec", "number", "status", "dialect", "created_at", "decided_by"]
    list_filter = ["status", "dialect"]
    list_select_related = ["spec", "decided_by"]
    search_fields = ["spec__target_table", "spec__mission__name"]
    readonly_fields = ["spec", "number", "status", "dialect", "sql", "content", "lineage", "diff", "feedback", "task",
                       "run", "created_by_agent", "decided_by", "decided_at", "created_at"]
    actions = ["approve"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Approve the selected proposed versions")
    def approve(self, request, queryset):
        for version in queryset.filter(status="proposed"):
            try:
                mapping_spec_approve(version=version, actor=request.user)
            except DomainError as error:
                self.message_user(request, error.message, level=messages.ERROR)


class IndexedDocumentInline(admin.TabularInline):
    model = IndexedDocument
    fields = ["title", "content_type", "sha256", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(DocsIndex)
class DocsIndexAdmin(admin.ModelAdmin):
    """Documents are added with ``manage.py index_docs`` (split into passages and indexed for search)."""

    list_display = ["name", "created_at"]
    search_fields = ["name", "description"]
    inlines = [IndexedDocumentInline]
