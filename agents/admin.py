from django import forms
from django.contrib import admin, messages

from agents.dbt.services import environment_build_request, environment_set
from agents.models import (
    Agent,
    Connection,
    DocsIndex,
    Environment,
    IndexedDocument,
    MappingSpec,
    MappingSpecVersion,
    split_password,
)
from genesis.admin_utils import JSON_FORMFIELDS, service_action
from genesis.exceptions import DomainError


class ConnectionForm(forms.ModelForm):
    """The secret is write-only: never rendered back; left blank on edit, the stored one is kept."""

    secret = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False),
        help_text="Write-only. Leave blank to keep the stored secret.",
    )
    clear_secret = forms.BooleanField(required=False, help_text="Remove the stored secret.")

    class Meta:
        model = Connection
        fields = ["name", "engine", "location", "secret", "purpose", "description", "groups", "missions"]

    def clean(self):
        data = super().clean()
        if not data.get("secret") and self.instance.pk and not data.get("clear_secret"):
            data["secret"] = Connection.objects.values_list("secret", flat=True).get(pk=self.instance.pk)
        return data

    def _post_clean(self):
        super()._post_clean()
        # Model.clean moved a password typed into the DSN into the secret; keep the form in step.
        self.cleaned_data["location"] = self.instance.location


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    form = ConnectionForm
    list_display = ["name", "engine", "purpose", "shown_location", "has_secret", "updated_at"]
    list_filter = ["engine", "purpose"]
    search_fields = ["name", "description"]
    # The access list: who may give the connection to a mission, and which missions may run SQL on it.
    filter_horizontal = ["groups", "missions"]

    @admin.display(description="Location")
    def shown_location(self, obj):
        return split_password(obj.location)[0]

    @admin.display(description="Secret set", boolean=True)
    def has_secret(self, obj):
        return obj.has_secret


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    formfield_overrides = JSON_FORMFIELDS
    list_display = ["name", "kind", "enabled", "created_at"]
    list_filter = ["enabled", "kind"]
    search_fields = ["name", "kind", "description"]


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
        service_action(environment_build_request, keyword="environment", noun="environment(s)",
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
        from agents.services import mapping_spec_approve

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
