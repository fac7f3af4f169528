"""Test data. Factories write rows directly (set-up, not behaviour under test); the behaviour
under test always goes through the services."""

from datetime import time

import factory

from contractors.models import Contractor, Rating, Region, TimeOff, WorkingHours


class RegionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Region
        django_get_or_create = ("slug",)

    slug = "north"
    name = factory.LazyAttribute(lambda r: r.slug.title())
    center_lat = 40.9
    center_lng = -73.9
    radius_miles = 25


class ContractorFactory(factory.django.DjangoModelFactory):
    """An active tile contractor in New York, Mon-Fri 08:00-17:00 local time."""

    class Meta:
        model = Contractor
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Contractor {n}")
    type = "tile"
    skills = factory.LazyFunction(lambda: ["grout", "tile"])
    lat = 40.71
    lng = -74.0
    address = "1 Main St, New York"
    region = "default"
    timezone = "America/New_York"
    status = "active"

    @factory.post_generation
    def hours(self, create, extracted, **kwargs):
        if not create:
            return
        windows = (
            extracted if extracted is not None else [(day, time(8), time(17)) for day in range(5)]
        )
        WorkingHours.objects.bulk_create(
            [WorkingHours(contractor=self, weekday=d, start=s, end=e) for d, s, e in windows]
        )


class TimeOffFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TimeOff

    contractor = factory.SubFactory(ContractorFactory)
    reason = "vacation"


class RatingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Rating

    contractor = factory.SubFactory(ContractorFactory)
    job_id = factory.Sequence(lambda n: 100_000 + n)
    stars = 5
