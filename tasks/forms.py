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
    answer = forms.CharField(label="Answer", max_length=5000, required=False)
    # A question that takes answers other than its options (a mapping question: any TABLE.COLUMN, ``sql: ...``, a
    # relationship ``A.x = B.y``, or none) shows a text box beside them; what is typed there wins.
    answer_other = forms.CharField(label="Another answer", max_length=5000, required=False)

    def __init__(self, *args, question=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.question = question

    def clean(self):
        data = super().clean()
        free = getattr(self.question, "allows_free_answer", False)
        other = (data.get("answer_other") or "").strip() if free else ""
        value = other or (data.get("answer") or "").strip()
        options = getattr(self.question, "options", None) or []
        if not value:
            self.add_error("answer", "An answer is required.")
        elif options and value not in options and not free:
            self.add_error("answer", f"Choose one of the offered answers: {', '.join(options)}.")
        data["answer"] = value
        return data
