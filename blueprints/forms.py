"""The launch form: a blueprint, the mission's name, objective and mode, and the blueprint's parameters as fields
(one per declared parameter, typed, pre-filled from its default or the obvious connection)."""

from __future__ import annotations

import re

from django import forms

from agents.models import Connection
from blueprints.choices import ParamType
from blueprints.models import BlueprintVersion
from genesis.documents import loads_json
from missions.choices import MissionMode

PARAM_PREFIX = "param__"

# Words that make an objective read as an outcome ("... are built daily", "... reconcile with ...").
_OUTCOME_WORDS = re.compile(
    r"\b(is|are|be|been|will|can|has|have|so that|match(es)?|reconcile[sd]?|within|every|daily|hourly|weekly|"
    r"monthly|refresh(ed|es)?|built|available|validated|pass(es)?|less than|at least|no more than)\b",
    re.IGNORECASE,
)
_IMPERATIVE = re.compile(r"^(build|create|implement|make|add|set up|setup|migrate|write|do|fix|develop|design)\b",
                         re.IGNORECASE)


def objective_warning(text: str) -> str:
    """A hint when an objective reads like a title ("Claims pipeline") rather than an outcome ("Claim summaries
    are refreshed daily and reconcile with the source"). Empty when it reads as an outcome."""
    text = (text or "").strip()
    if not text:
        return ""
    words = text.split()
    if len(words) < 5:
        return ("This reads like a title. State the outcome: what will be true when the mission is done "
                "(for example “CLAIM_SUMMARY is refreshed daily and reconciles with the source”).")
    if _IMPERATIVE.match(text) and not _OUTCOME_WORDS.search(text):
        return ("This reads like a task (“build …”) rather than an outcome. Say what will be true when it is done, "
                "and how anyone can tell.")
    if not _OUTCOME_WORDS.search(text):
        return "Say what will be true when the mission is done (e.g. “… is available daily”, “… reconciles with …”)."
    return ""


class LaunchForm(forms.Form):
    version = forms.ModelChoiceField(queryset=BlueprintVersion.objects.none(), label="Blueprint",
                                     empty_label=None)
    name = forms.CharField(label="Mission name", max_length=200)
    objective = forms.CharField(
        label="Objective (the outcome)", widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What will be true when the mission is done, and how anyone can tell.",
    )
    mode = forms.ChoiceField(label="Mode", choices=MissionMode.choices, initial=MissionMode.STEP,
                             widget=forms.RadioSelect)
    start_now = forms.BooleanField(label="Start it now", required=False, initial=True,
                                   help_text="Otherwise it is created as a draft you launch from its cockpit.")
    spec_file = forms.FileField(
        label="Spec file", required=False,
        help_text="The spec file (YAML) that names the sources, the targets and what their columns mean; checked "
                  "before the mission is created.")
    suggestion = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput,
                                    error_messages={"invalid": "The suggestion must be a suggestion's number."})
    from_mission = forms.ChoiceField(
        label="Reuse the approved mappings of", required=False,
        help_text="The mapping tasks then check that mission's approved mapping specs against the current source "
                  "instead of mapping again.")

    def __init__(self, *args, versions, version: BlueprintVersion | None, initial_params=None, reusable=(),
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["version"].queryset = versions
        self.fields["from_mission"].choices = [("", "None: map afresh")] + [(str(pk), name) for pk, name in reusable]
        self.selected_version = version
        self.requires_spec = bool(version and "spec_file" in (version.requires or []))
        if self.requires_spec:
            self.fields["spec_file"].required = True
            self.fields["spec_file"].error_messages["required"] = (
                f"{version.blueprint.slug} requires a spec file: its steps read the targets from it.")
        self.param_names: list[str] = []
        if version is None:
            return
        connections = None
        for param in version.parameters:
            name = param["name"]
            field_name = PARAM_PREFIX + name
            label = name.replace("_", " ").capitalize()
            help_text = param.get("help", "")
            ptype = param["type"]
            required = bool(param.get("required", True))
            if self.requires_spec and ptype == ParamType.CONNECTION and param.get("purpose") in ("source", "target"):
                required = False  # the spec file names the source and target connections
            initial = (initial_params or {}).get(name)
            if ptype == ParamType.CONNECTION:
                if connections is None:
                    connections = list(Connection.objects.order_by("name").values_list("name", "purpose"))
                purpose = param.get("purpose")
                choices = [(n, f"{n} ({p})") for n, p in connections if not purpose or p == purpose] or [
                    (n, f"{n} ({p})") for n, p in connections]
                field = forms.ChoiceField(choices=[("", "Choose a connection")] + choices, required=required)
            elif ptype == ParamType.BOOLEAN:
                field = forms.BooleanField(required=False)
            elif ptype == ParamType.INTEGER:
                field = forms.IntegerField(required=required)
            elif ptype == ParamType.NUMBER:
                field = forms.FloatField(required=required)
            elif ptype == ParamType.TEXT:
                field = forms.CharField(required=required, widget=forms.Textarea(attrs={"rows": 2}))
            elif ptype == ParamType.LIST:
                field = forms.CharField(required=required, help_text=(help_text + " Comma-separated.").strip())
                if isinstance(initial, list):
                    initial = ", ".join(str(v) for v in initial)
            else:
                field = forms.CharField(required=required)
            field.label = label
            if ptype != ParamType.LIST:
                field.help_text = help_text
            field.initial = initial
            self.fields[field_name] = field
            self.param_names.append(name)

    @property
    def param_fields(self):
        return [self[PARAM_PREFIX + name] for name in self.param_names]

    @property
    def objective_hint(self) -> str:
        value = self.data.get("objective") if self.is_bound else self.initial.get("objective")
        return objective_warning(value or "")

    def params(self) -> dict:
        values = {}
        for name in self.param_names:
            value = self.cleaned_data.get(PARAM_PREFIX + name)
            if isinstance(value, str) and value.strip().startswith("["):
                try:
                    value = loads_json(value)
                except ValueError:
                    pass
            values[name] = value
        return values
