"""Forms of the decisions people make on the pages; each field has a label for screen readers."""

from __future__ import annotations

from django import forms


class RejectForm(forms.Form):
    feedback = forms.CharField(
        label="Feedback", max_length=5000, widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "Feedback is required: say what is wrong so the next attempt can fix it."},
    )

    def clean_feedback(self) -> str:
        value = self.cleaned_data["feedback"].strip()
        if not value:
            raise forms.ValidationError("Feedback is required: say what is wrong so the next attempt can fix it.")
        return value


class AnswerForm(forms.Form):
    answer = forms.CharField(label="Answer", max_length=5000,
                             error_messages={"required": "An answer is required."})

    def __init__(self, *args, question=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.question = question

    def clean_answer(self) -> str:
        value = self.cleaned_data["answer"].strip()
        if not value:
            raise forms.ValidationError("An answer is required.")
        options = getattr(self.question, "options", None) or []
        if options and value not in options:
            raise forms.ValidationError(f"Choose one of the offered answers: {', '.join(options)}.")
        return value
