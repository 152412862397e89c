from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from genesis.admin_utils import JSON_FORMFIELDS, ReadOnlyAdminMixin, history_table, service_action
from genesis.exceptions import DomainError
from history.models import HistoryEntry
from history.services import history_record
from missions import selectors, services
from missions.choices import SIGNOFF_STATUSES, Role
from missions.models import Membership, Mission, MissionSignoff
from tasks.choices import TaskStatus
from tasks.models import Artifact, Phase, Task
from tasks.services import task_record_created, task_record_edit
from workflows import missions as mission_workflows

HISTORY_ON_PAGE = 100


class MembershipFormSet(BaseInlineFormSet):
    def clean(self):
        super().clean()
        owner_id = self.instance.owner_id
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            user = data.get("user")
            if user is None or user.pk != owner_id:
                continue
            if data.get("DELETE") or data.get("role") != Role.MISSION_OWNER:
                form.add_error("role", "The Mission Owner keeps the mission_owner role; change the owner first.")
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            if data.get("signoff_required") and not data.get("DELETE") and data.get("role") != Role.STAKEHOLDER:
                form.add_error("signoff_required", "Only a stakeholder's sign-off can be required before closing.")


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipFormSet
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "signoff_required"]


class CloseForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 80}), required=False, max_length=2000,
                           help_text="Your sign-off: what was delivered and accepted (recorded in the history).")


class PhaseInline(admin.TabularInline):
    model = Phase
    extra = 0
    can_delete = False
    fields = ["order", "name", "description", "status"]
    readonly_fields = ["status"]


class TaskInline(admin.TabularInline):
    model = Task
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["key", "title", "owner_user", "owner_agent", "phase", "position", "status"]
    readonly_fields = ["status"]
    autocomplete_fields = ["owner_user", "owner_agent"]

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        phase_field = formset.form.base_fields.get("phase")
        if phase_field is not None:
            phase_field.queryset = Phase.objects.filter(mission=obj) if obj else Phase.objects.none()
        return formset

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner_user", "owner_agent", "phase")


class ArtifactInline(admin.TabularInline):
    model = Artifact
    extra = 0
    can_delete = False
    fields = ["name", "version", "kind", "task", "file", "url", "size", "created_at"]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("task")


@admin.register(Mission)
class MissionAdmin(admin.ModelAdmin):
    formfield_overrides = JSON_FORMFIELDS
    list_display = ["name", "status", "mode", "owner", "progress", "created_at"]
    list_filter = ["status", "mode", "owner"]
    list_select_related = ["owner"]
    search_fields = ["name", "objective", "scope"]
    date_hierarchy = "created_at"
    autocomplete_fields = ["owner", "source_connection", "target_connection"]
    inlines = [MembershipInline, PhaseInline, TaskInline, ArtifactInline]
    readonly_fields = ["status", "sign_off_link", "created_at", "updated_at", "launched_at", "completed_at",
                       "closed_at", "signoffs_given", "history_timeline"]
    fieldsets = [
        (None, {"fields": ["name", "objective", "scope", "success_criteria", "owner", "status", "sign_off_link",
                           "mode"]}),
        ("Data", {"fields": ["spec_file", "source_connection", "target_connection", "docs_index"]}),
        ("Escalation", {"fields": ["escalation_emails", "escalation_webhook"]}),
        ("Timeline", {"fields": ["created_at", "updated_at", "launched_at", "completed_at", "closed_at"]}),
        ("Stakeholders' sign-off", {"fields": ["signoffs_given"]}),
        ("History", {"fields": ["history_timeline"]}),
    ]
    actions = [
        service_action(mission_workflows.mission_launch, description="Launch selected missions", verb="Launched"),
        service_action(mission_workflows.mission_pause, description="Pause selected missions", verb="Paused"),
        service_action(mission_workflows.mission_resume, description="Resume selected missions", verb="Resumed"),
        service_action(mission_workflows.mission_cancel, description="Cancel selected missions", verb="Cancelled"),
        service_action(mission_workflows.mission_close, description="Close (sign off) selected missions",
                       verb="Closed"),
    ]

    @admin.display(description="")
    def sign_off_link(self, obj):
        if obj.pk is None or obj.status not in SIGNOFF_STATUSES:
            return ""
        return format_html('<a class="button" href="{}">Sign off and close…</a>',
                           reverse("admin:missions_mission_close", args=[obj.pk]))

    @admin.display(description="Sign-offs (latest per stakeholder)")
    def signoffs_given(self, obj):
        if obj.pk is None:
            return "—"
        latest = selectors.latest_signoffs([obj.pk])[obj.pk]
        if not latest:
            return "No sign-off yet."
        return format_html_join(
            "", "<p><b>{}</b> by {} at {}{}</p>",
            ((s.get_decision_display(), s.user, s.created_at.strftime("%Y-%m-%d %H:%M"),
              f": {s.note}" if s.note else "") for s in latest))

    def get_urls(self):
        return [
            path("<int:pk>/close/", self.admin_site.admin_view(self.close_view), name="missions_mission_close"),
            *super().get_urls(),
        ]

    def close_view(self, request, pk):
        """The Mission Owner's sign-off with a note: the same verb as the cockpit and the API."""
        mission = get_object_or_404(Mission.objects.select_related("owner"), pk=pk)
        if not self.has_change_permission(request, mission):
            raise PermissionDenied("You may not change missions.")
        form = CloseForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                mission_workflows.mission_close(mission=mission, actor=request.user, note=form.cleaned_data["note"])
            except DomainError as error:
                form.add_error("note" if error.field == "note" else None, error.message)
            else:
                self.message_user(request, f"“{mission}” signed off and closed.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:missions_mission_change", args=[pk]))
        latest = selectors.latest_signoffs([mission.pk])[mission.pk]
        context = {
            **self.admin_site.each_context(request), "title": "Sign off and close a mission", "form": form,
            "mission": mission, "opts": self.model._meta, "signoffs": latest,
            "missing": selectors.signoffs_missing(mission, latest),
        }
        return TemplateResponse(request, "admin/missions/close.html", context)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            task_total=Count("tasks", distinct=True),
            task_done=Count("tasks", filter=Q(tasks__status=TaskStatus.DONE), distinct=True),
        )

    @admin.display(description="Tasks done", ordering="task_done")
    def progress(self, obj):
        return f"{obj.task_done} / {obj.task_total}"

    @admin.display(description="History (newest first)")
    def history_timeline(self, obj):
        if obj.pk is None:
            return "—"
        entries = list(
            HistoryEntry.objects.filter(mission=obj)
            .select_related("task", "actor_user", "actor_agent")
            .order_by("-created_at", "-id")[:HISTORY_ON_PAGE]
        )
        link = reverse("admin:history_historyentry_changelist") + f"?mission__id__exact={obj.pk}"
        return format_html('{}<p><a href="{}">All history of this mission</a></p>', history_table(entries), link)

    def has_delete_permission(self, request, obj=None):
        # Missions are cancelled or closed, never deleted: their history is a permanent record.
        return False

    def save_model(self, request, obj, form, change):
        if change:
            obj.save()
            services.mission_record_edit(mission=obj, actor=request.user, changed_fields=form.changed_data)
        else:
            services.mission_save_new(mission=obj, actor=request.user)

    def save_formset(self, request, form, formset, change):
        mission = form.instance
        if formset.model is Membership:
            def roles():
                rows = Membership.objects.filter(mission=mission).values_list("user__username", "role",
                                                                               "signoff_required")
                return {name: f"{role} (sign-off required)" if required else role for name, role, required in rows}

            before = roles()
            formset.save()
            after = roles()
            for username in sorted(set(before) | set(after)):
                if before.get(username) != after.get(username):
                    history_record(
                        mission=mission, event="membership.set" if username in after else "membership.removed",
                        actor=request.user, message=f"{username}: {before.get(username)} → {after.get(username)}",
                        data={"user": username, "from": before.get(username), "to": after.get(username)},
                    )
            return
        # Tasks and phases: save the validated rows, then record each creation and edit in history.
        formset.save(commit=False)
        for obj in formset.new_objects:
            obj.save()
            self._record(request, mission, obj, created=True, fields=[])
        for obj, fields in formset.changed_objects:
            obj.save()
            self._record(request, mission, obj, created=False, fields=fields)

    @staticmethod
    def _record(request, mission, obj, *, created, fields):
        if isinstance(obj, Task):
            if created:
                task_record_created(task=obj, actor=request.user)
            else:
                task_record_edit(task=obj, actor=request.user, changed_fields=fields)
            return
        history_record(
            mission=mission, event="phase.created" if created else "phase.updated", actor=request.user,
            message=f"Phase {obj.order}. {obj.name} " + ("added." if created else "changed."),
            data={"phase": obj.pk, "changed": fields},
        )


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["mission", "user", "role", "created_at"]
    list_filter = ["role"]
    list_select_related = ["mission", "user"]
    search_fields = ["mission__name", "user__username"]
    autocomplete_fields = ["mission", "user"]

    def has_change_permission(self, request, obj=None):
        return False  # roles change on the mission page, where history records them

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(MissionSignoff)
class MissionSignoffAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["mission", "user", "decision", "created_at"]
    list_filter = ["decision"]
    list_select_related = ["mission", "user"]
    search_fields = ["mission__name", "user__username", "note"]
    fields = ["mission", "user", "decision", "note", "created_at"]
    readonly_fields = fields
