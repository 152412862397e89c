from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from django.urls import reverse
from django.utils.html import format_html

from genesis.admin_utils import JSON_FORMFIELDS, ReadOnlyAdminMixin, history_table, service_action
from genesis.exceptions import DomainError
from genesis.uploads import validate_upload_size
from history.models import HistoryEntry
from tasks import services
from tasks.models import Artifact, Dependency, Notification, Phase, Question, Run, Task
from workflows import tasks as task_workflows


class DependencyFormSet(BaseInlineFormSet):
    """Refuses self-, cross-mission and cyclic dependencies on the form, naming the cycle's path."""

    def clean(self):
        super().clean()
        task = self.instance
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            depends_on = data.get("depends_on")
            if depends_on is None or data.get("DELETE") or not form.has_changed():
                continue
            if task.pk is None:
                if depends_on.mission_id != task.mission_id:
                    form.add_error("depends_on", "A task can only depend on a task of the same mission.")
                continue
            try:
                services.dependency_check(task=task, depends_on=depends_on)
            except DomainError as error:
                form.add_error("depends_on", error.message)


class DependencyInline(admin.TabularInline):
    model = Dependency
    fk_name = "task"
    formset = DependencyFormSet
    extra = 1
    autocomplete_fields = ["depends_on"]
    verbose_name = "prerequisite"
    verbose_name_plural = "prerequisites (this task waits for them)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("depends_on", "task")


class RunInline(admin.TabularInline):
    model = Run
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["attempt", "status", "worker", "started_at", "finished_at", "error"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class TaskArtifactInline(admin.TabularInline):
    model = Artifact
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["name", "version", "kind", "run", "file", "url", "size", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("run")


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    formfield_overrides = JSON_FORMFIELDS
    list_display = ["key", "title", "mission", "phase", "status", "owner_display", "updated_at"]
    list_filter = ["status", "mission", "owner_agent", "owner_user"]
    list_select_related = ["mission", "phase", "owner_user", "owner_agent"]
    search_fields = ["key", "title", "mission__name"]
    autocomplete_fields = ["mission", "owner_user", "owner_agent"]
    inlines = [DependencyInline, RunInline, TaskArtifactInline]
    readonly_fields = ["status", "created_at", "updated_at", "history_timeline"]
    fieldsets = [
        (None, {"fields": ["mission", "phase", "key", "title", "description", "acceptance_criteria", "status"]}),
        ("Owner (exactly one)", {"fields": ["owner_user", "owner_agent"]}),
        ("Execution", {"fields": ["config", "max_attempts", "timeout_seconds", "position"]}),
        ("History", {"fields": ["created_at", "updated_at", "history_timeline"]}),
    ]

    actions = [
        service_action(task_workflows.task_approve, keyword="task", noun="task(s)",
                       description="Approve selected tasks", verb="Approved"),
        service_action(task_workflows.task_retry, keyword="task", noun="task(s)", description="Retry selected tasks",
                       verb="Retried"),
        service_action(task_workflows.task_cancel, keyword="task", noun="task(s)", description="Cancel selected tasks",
                       verb="Cancelled"),
    ]

    @admin.display(description="Owner")
    def owner_display(self, obj):
        return obj.owner_user or obj.owner_agent

    @admin.display(description="History (newest first)")
    def history_timeline(self, obj):
        if obj.pk is None:
            return "—"
        entries = list(
            HistoryEntry.objects.filter(task=obj)
            .select_related("task", "actor_user", "actor_agent")
            .order_by("-created_at", "-id")[:100]
        )
        link = reverse("admin:history_historyentry_changelist") + f"?task__id__exact={obj.pk}"
        return format_html('{}<p><a href="{}">All history of this task</a></p>', history_table(entries), link)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if "phase" in form.base_fields:
            form.base_fields["phase"].queryset = (
                Phase.objects.filter(mission=obj.mission) if obj else Phase.objects.select_related("mission")
            )
        return form

    def has_delete_permission(self, request, obj=None):
        return False  # tasks are cancelled or skipped, never deleted: history refers to them

    def save_model(self, request, obj, form, change):
        is_new = obj.pk is None
        obj.save()
        if is_new:
            services.task_record_created(task=obj, actor=request.user)
        else:
            services.task_record_edit(task=obj, actor=request.user, changed_fields=form.changed_data)

    def save_formset(self, request, form, formset, change):
        if formset.model is not Dependency:
            formset.save()
            return
        task = form.instance
        formset.save(commit=False)  # fills new/changed/deleted_objects; the services do the writing
        for edge in formset.deleted_objects:
            services.dependency_remove(edge=edge, actor=request.user)
        for edge, _fields in formset.changed_objects:  # pointed elsewhere: remove the old edge, add the new
            services.dependency_remove(edge=Dependency.objects.get(pk=edge.pk), actor=request.user)
            services.dependency_add(task=task, depends_on=edge.depends_on, actor=request.user)
        for edge in formset.new_objects:
            services.dependency_add(task=task, depends_on=edge.depends_on, actor=request.user)


@admin.register(Dependency)
class DependencyAdmin(admin.ModelAdmin):
    list_display = ["task", "depends_on", "mission", "created_at"]
    list_select_related = ["task__mission", "depends_on"]
    search_fields = ["task__key", "depends_on__key", "task__mission__name"]
    list_filter = ["task__mission"]

    @admin.display(description="Mission")
    def mission(self, obj):
        return obj.task.mission

    def has_add_permission(self, request):
        return False  # add on the task page, where the cycle check names the path

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Phase)
class PhaseAdmin(admin.ModelAdmin):
    formfield_overrides = JSON_FORMFIELDS
    list_display = ["name", "order", "mission", "status"]
    list_filter = ["status", "mission"]
    list_select_related = ["mission"]
    search_fields = ["name", "mission__name"]
    readonly_fields = ["status"]

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Run)
class RunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["task", "mission", "attempt", "status", "worker", "started_at", "finished_at"]
    list_filter = ["status"]
    list_select_related = ["task__mission"]
    search_fields = ["task__key", "task__mission__name", "worker"]
    readonly_fields = [f.name for f in Run._meta.fields]

    @admin.display(description="Mission")
    def mission(self, obj):
        return obj.task.mission


class ArtifactForm(forms.ModelForm):
    class Meta:
        model = Artifact
        fields = ["mission", "task", "run", "kind", "name", "file", "url"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "name" in self.fields:
            self.fields["name"].required = False
            self.fields["name"].help_text = "Defaults to the uploaded file's name."

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        if upload:
            validate_upload_size(upload)
        return upload

    def clean(self):
        data = super().clean()
        if bool(data.get("file")) == bool(data.get("url")):
            raise ValidationError("Give either a file or a URL, exactly one.")
        if not data.get("name"):
            data["name"] = getattr(data.get("file"), "name", "") or data.get("url", "")
        task, mission = data.get("task"), data.get("mission")
        if task and mission and task.mission_id != mission.pk:
            self.add_error("task", "The task belongs to another mission.")
        if mission and (refusal := services.artifact_refusal(mission)):
            self.add_error("mission", refusal)
        return data

    def _post_clean(self):
        # The service validates and stores the row; the model's own checks would see a half-built artifact.
        pass


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    form = ArtifactForm
    list_display = ["name", "version", "kind", "mission", "task", "size", "created_at"]
    list_filter = ["kind", "mission"]
    list_select_related = ["mission", "task"]
    search_fields = ["name", "mission__name", "task__key"]
    autocomplete_fields = ["mission", "task"]
    raw_id_fields = ["run"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ["sha256", "size", "content_type"]
        return [f.name for f in Artifact._meta.fields]

    def has_change_permission(self, request, obj=None):
        return obj is None  # saved artifacts are immutable: a new version is a new row

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        try:
            created = services.artifact_create(
                mission=data["mission"], task=data.get("task"), run=data.get("run"), kind=data["kind"],
                name=data["name"], file=data.get("file") or None, url=data.get("url") or "", actor=request.user,
            )
        except DomainError as error:
            raise ValidationError({error.field or "__all__": error.message}) from None
        obj.__dict__.update(created.__dict__)


@admin.register(Question)
class QuestionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Questions agents asked; answered through the pages or API (``question_answer``), read-only here."""

    list_display = ["text", "mission", "task", "addressed_to", "status", "answer", "created_at"]
    list_filter = ["status"]
    list_select_related = ["mission", "task", "addressed_to"]
    search_fields = ["text", "answer", "task__key", "mission__name"]
    readonly_fields = [f.name for f in Question._meta.fields]


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Escalation messages and their delivery (attempts, last error), read-only."""

    list_display = ["subject", "mission", "channel", "target", "status", "attempts", "created_at", "sent_at"]
    list_filter = ["status", "channel"]
    list_select_related = ["mission"]
    search_fields = ["subject", "target", "mission__name"]
    readonly_fields = [f.name for f in Notification._meta.fields]
