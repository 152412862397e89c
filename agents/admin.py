from django import forms
from django.contrib import admin

from agents.models import Agent, Connection, split_password
from genesis.admin_utils import JSON_FORMFIELDS


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
