{#- The combination of `columns` is unique (the grain of a mart), like dbt_utils' test of
    that name, which this project does not install. -#}
{% test unique_combination_of_columns(model, columns) %}
    select {{ columns | join(", ") }}, count(*) as n
    from {{ model }}
    group by {{ columns | join(", ") }}
    having count(*) > 1
{% endtest %}
