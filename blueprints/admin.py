"""Blueprint admin: upload import, read-only versions with their phases and actions, check results with waive."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from blueprints.models import Blueprint, BlueprintVersion, CheckEvaluation, LaunchSuggestion, MissionOrigin
from blueprints.permissions import can_import_blueprints
from blueprints.selectors import blueprint_list
from blueprints.services import blueprint_export, blueprint_import
from blueprints.validation import BlueprintInvalid
from genesis.admin_utils import ReadOnlyAdminMixin
from genesis.exceptions import DomainError
from genesis.uploads import validate_upload_size
from tasks.models import Phase
from workflows.checks import check_waive, phase_recheck


def _pre(value) -> str:
    return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', value)


class BlueprintUploadForm(forms.Form):
    file = forms.FileField(help_text="A blueprint YAML file (see docs/blueprints.md).",
                           validators=[validate_upload_size])


class VersionInline(admin.TabularInline):
    model = BlueprintVersion
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["number", "name", "source_name", "created_by", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by")


@admin.register(Blueprint)
class BlueprintAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "latest_number", "version_count", "mission_count", "tag_list", "updated_at"]
    search_fields = ["slug", "name", "description"]
    readonly_fields = ["slug", "name", "description", "tags", "created_at", "updated_at"]
    inlines = [VersionInline]

    def get_queryset(self, request):
        return blueprint_list()

    @admin.display(description="Latest version", ordering="latest_number")
    def latest_number(self, obj):
        return obj.latest_number

    @admin.display(description="Versions")
    def version_count(self, obj):
        return obj.version_count

    @admin.display(description="Missions")
    def mission_count(self, obj):
        return obj.mission_count

    @admin.display(description="Tags")
    def tag_list(self, obj):
        return ", ".join(obj.tags)

    def has_change_permission(self, request, obj=None):
        return False  # blueprints change by loading a new version

    def has_delete_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return can_import_blueprints(request.user)

    def add_view(self, request, form_url="", extra_context=None):
        """The add page is an upload: the file is validated and stored as a version, or every problem shown."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        problems: list[str] = []
        if request.method == "POST":
            form = BlueprintUploadForm(request.POST, request.FILES)
            if form.is_valid():
                upload = form.cleaned_data["file"]
                try:
                    text = upload.read().decode("utf-8")
                except UnicodeDecodeError:
                    form.add_error("file", "The file is not UTF-8 text.")
                else:
                    try:
                        version = blueprint_import(text=text, filename=upload.name, actor=request.user)
                    except BlueprintInvalid as error:
                        problems = error.lines()
                        form.add_error("file", f"Refused: {len(problems)} problem(s); nothing was stored.")
                    else:
                        verb = "Loaded" if version.created else "Unchanged:"
                        self.message_user(request, f"{verb} {version.blueprint.slug} version {version.number}.",
                                          messages.SUCCESS)
                        return HttpResponseRedirect(
                            reverse("admin:blueprints_blueprintversion_change", args=[version.pk])
                        )
        else:
            form = BlueprintUploadForm()
        context = {
            **self.admin_site.each_context(request), "title": "Load a blueprint file", "form": form,
            "problems": problems, "opts": self.model._meta, "add": True, "has_view_permission": True,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/blueprints/upload.html", context)


@admin.register(BlueprintVersion)
class BlueprintVersionAdmin(admin.ModelAdmin):
    list_display = ["blueprint", "number", "name", "phase_count", "mission_count", "source_name", "created_at"]
    list_filter = ["blueprint"]
    list_select_related = ["blueprint"]
    search_fields = ["blueprint__slug", "name"]
    fields = ["blueprint", "number", "name", "description", "tags", "parameters_table", "objective", "scope",
              "success_criteria_list", "phases_table", "missions", "source_name", "content_hash", "created_by",
              "created_at", "exported"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            phase_total=Count("phases", distinct=True), mission_total=Count("origins", distinct=True)
        )

    @admin.display(description="Phases")
    def phase_count(self, obj):
        return obj.phase_total

    @admin.display(description="Missions")
    def mission_count(self, obj):
        return obj.mission_total

    @admin.display(description="Parameters")
    def parameters_table(self, obj):
        if not obj.parameters:
            return "None."
        rows = format_html_join("", "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>", (
            (p["name"], p["type"] + (f" ({p['purpose']})" if p.get("purpose") else ""),
             json.dumps(p["default"]) if "default" in p else ("required" if p.get("required") else "—"),
             p.get("help", ""))
            for p in obj.parameters
        ))
        return format_html("<table><tr><th>Name</th><th>Type</th><th>Default</th><th>Help</th></tr>{}</table>",
                           rows)

    @admin.display(description="Success criteria")
    def success_criteria_list(self, obj):
        return _criteria_html(obj.success_criteria)

    @admin.display(description="Phases and actions")
    def phases_table(self, obj):
        parts = []
        for phase in obj.phases.prefetch_related("actions").order_by("order"):
            rows = format_html_join("", "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                                        "</tr>", (
                (a.key, a.title, a.owner, ", ".join(a.depends_on) or "—", _criteria_html(a.acceptance_criteria))
                for a in phase.actions.all()
            ))
            parts.append(format_html(
                "<h3>{}. {}</h3><p>{}</p><table><tr><th>Key</th><th>Title</th><th>Owner</th><th>After</th>"
                "<th>Acceptance criteria</th></tr>{}</table><p><b>Exit criteria:</b> {}</p>",
                phase.order, phase.name, phase.description, rows, _criteria_html(phase.exit_criteria),
            ))
        return format_html_join("", "{}", ((p,) for p in parts))

    @admin.display(description="Missions launched from it")
    def missions(self, obj):
        origins = list(obj.origins.select_related("mission").order_by("-created_at")[:50])
        if not origins:
            return "None yet."
        return format_html_join(", ", '<a href="{}">{}</a>', (
            (reverse("admin:missions_mission_change", args=[o.mission_id]), o.mission.name) for o in origins
        ))

    @admin.display(description="Export (YAML)")
    def exported(self, obj):
        return _pre(blueprint_export(blueprint_version=obj))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # immutable

    def has_delete_permission(self, request, obj=None):
        return False


def _criteria_html(criteria) -> str:
    if not criteria:
        return "—"
    return format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>", (
        (c if isinstance(c, str) else f"{c.get('description') or c['type']} [{c['type']} "
                                      f"{json.dumps(c.get('params') or {})}]",)
        for c in criteria
    )))


@admin.register(MissionOrigin)
class MissionOriginAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["mission", "blueprint_version", "created_at"]
    list_select_related = ["mission", "blueprint_version__blueprint"]
    search_fields = ["mission__name", "blueprint_version__blueprint__slug"]
    readonly_fields = ["mission", "blueprint_version", "params", "created_at"]


@admin.register(LaunchSuggestion)
class LaunchSuggestionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every launch suggestion asked of the language model, followed by a launch or not: who asked, what it cost."""

    list_display = ["created_at", "user", "outcome", "blueprint_version", "tokens", "latency_ms", "mission"]
    list_filter = ["outcome", "model"]
    list_select_related = ["user", "blueprint_version__blueprint", "mission"]
    search_fields = ["user__username", "objective", "mission__name"]
    fields = ["created_at", "user", "objective", "outcome", "model", "prompt_tokens", "completion_tokens",
              "latency_ms", "blueprint_version", "mission", "launched_at", "exchange_pretty"]
    readonly_fields = fields

    @admin.display(description="Exchange (prompt, response, checks)")
    def exchange_pretty(self, obj):
        return _pre(json.dumps(obj.exchange, indent=2, default=str))


class WaiveForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
                             help_text="Why the mission may go on although this check failed. Kept in history.")


@admin.register(CheckEvaluation)
class CheckEvaluationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["evaluated_at", "mission", "phase", "task", "scope", "description", "outcome_display",
                    "message_short"]
    list_filter = ["scope", "passed", "check_type", "mission"]
    list_select_related = ["mission", "phase", "task"]
    search_fields = ["mission__name", "phase__name", "task__key", "check_type", "description", "message"]
    fields = ["mission", "phase", "task", "run", "scope", "round", "criterion_index", "check_type", "description",
              "params", "passed", "message", "evidence_pretty", "evaluated_at", "waiver", "waive_link"]
    readonly_fields = fields
    actions = ["rerun_phase_checks"]

    @admin.display(description="Outcome", ordering="passed")
    def outcome_display(self, obj):
        colour = "green" if obj.passed else ("#b8860b" if obj.waived else "#ba2121")
        return format_html('<b style="color: {}">{}</b>', colour, obj.outcome)

    @admin.display(description="Message")
    def message_short(self, obj):
        return obj.message if len(obj.message) < 140 else obj.message[:137] + "…"

    @admin.display(description="Evidence")
    def evidence_pretty(self, obj):
        return _pre(json.dumps(obj.evidence, indent=2, sort_keys=True, default=str))

    @admin.display(description="Waiver")
    def waiver(self, obj):
        if not obj.waived:
            return "—"
        return format_html("Waived by {} at {}: {}", obj.waived_by, obj.waived_at.strftime("%Y-%m-%d %H:%M"),
                           obj.waiver_reason)

    @admin.display(description="")
    def waive_link(self, obj):
        if obj.passed or obj.waived or obj.scope != "exit":
            return ""
        return format_html('<a class="button" href="{}">Waive this failed check…</a>',
                           reverse("admin:blueprints_checkevaluation_waive", args=[obj.pk]))

    def get_urls(self):
        return [
            path("<int:pk>/waive/", self.admin_site.admin_view(self.waive_view),
                 name="blueprints_checkevaluation_waive"),
            *super().get_urls(),
        ]

    def waive_view(self, request, pk):
        evaluation = get_object_or_404(CheckEvaluation.objects.select_related("mission", "phase"), pk=pk)
        form = WaiveForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                check_waive(result=evaluation, actor=request.user, reason=form.cleaned_data["reason"])
            except DomainError as error:
                form.add_error("reason" if error.field == "reason" else None, error.message)
            else:
                self.message_user(request, f"Waived: {evaluation.description or evaluation.check_type}.",
                                  messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:blueprints_checkevaluation_change", args=[pk]))
        context = {
            **self.admin_site.each_context(request), "title": "Waive a failed check", "form": form,
            "evaluation": evaluation, "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/blueprints/waive.html", context)

    @admin.action(description="Re-run the exit checks of the selected results' phases")
    def rerun_phase_checks(self, request, queryset):
        phase_ids = sorted(set(queryset.exclude(phase=None).values_list("phase_id", flat=True)))
        for phase in Phase.objects.filter(pk__in=phase_ids).select_related("mission"):
            try:
                advance = phase_recheck(phase=phase, actor=request.user)
            except DomainError as error:
                self.message_user(request, error.message, messages.ERROR)
                continue
            phase.refresh_from_db()
            self.message_user(request, f"Checks of {phase.name} re-run: {phase.status}."
                              + (f" Opened: {', '.join(p.name for p in advance.opened)}." if advance.opened else ""),
                              messages.SUCCESS if phase.status != "failed" else messages.WARNING)
